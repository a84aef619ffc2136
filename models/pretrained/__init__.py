"""The shipped models, installed as the package data ``doom_a3c.pretrained_models`` (see doom_a3c/resources.py)."""
