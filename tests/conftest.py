"""Shared fixtures. Every test runs the real ViZDoom engine headless; none needs a display."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# One thread per test process: the suite must behave on a 2-core CI machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Run each test in its own folder, so ViZDoom's _vizdoom.ini and run outputs land there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def basic_spec():
    from doom_a3c.envs import load_scenario

    return load_scenario("basic")


def run_script(script: str, *args: str, timeout: float = 300, env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run one of scripts/*.py the way a user does, in a fresh interpreter, and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd)
