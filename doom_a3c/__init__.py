"""doom_a3c: A3C (asynchronous advantage actor-critic) for ViZDoom from raw pixels."""

__version__ = "0.1.0"
