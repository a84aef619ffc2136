"""The scenario files, installed as the package data ``doom_a3c.scenarios`` (see doom_a3c/resources.py)."""
