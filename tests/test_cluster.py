"""Ray across machines that share no files: a worker node started with Ray's own CLI in a view of the filesystem
where this checkout and vizdoom's bundled scenarios are not there (a file of its own, so that pytest-xdist can
run it beside tests/test_ray.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HANG, ROOT, wait_for_port
from doom_a3c.checkpoint import load_checkpoint

pytest.importorskip("ray")


def _can_hide_folders() -> bool:
    """Whether this machine lets a process see its own view of the filesystem (a mount namespace: root, or a
    kernel that allows unprivileged ones)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                            "mount -t tmpfs none /mnt"], capture_output=True, timeout=60)
    return probe.returncode == 0


def test_a_worker_node_that_shares_no_files_with_the_driver_trains_a_doom_scenario(tmp_path):
    """Ray's CLI as the README's cluster section tells a user (token authentication on): a head with no CPUs
    (the driver's machine: the parameter server only) and a second node started with `ray start --address`
    in a view of the filesystem where this checkout's package and scenario files and vizdoom's bundled
    scenarios are empty folders, as on a machine whose checkout and Python environment live elsewhere. Every
    worker runs there, from the package Ray ships and the game files the spec carries: basic trains to its
    budget with no worker lost."""
    import secrets
    import socket
    import tempfile

    import vizdoom

    if not _can_hide_folders():
        pytest.skip("needs mount namespaces (unshare --mount) to hide folders from the worker node")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "PYTHONPATH"}
    env = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    common = ["--block", "--disable-usage-stats", "--temp-dir", ray_tmp]
    hidden = [ROOT / "doom_a3c", ROOT / "scenarios", Path(vizdoom.scenarios_path)]
    hide = " && ".join(f"mount -t tmpfs none '{folder}' && test -z \"$(ls -A '{folder}')\"" for folder in hidden)
    processes = []

    def start(command: list[str]) -> subprocess.Popen:
        processes.append(subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
        return processes[-1]

    try:
        head = start([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "0", "--include-dashboard=false",
                      *common])
        wait_for_port(head, port, "ray start --head")
        deadline = time.monotonic() + HANG
        node = start(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                      f"{hide} && exec '{ray_cli}' start --address {address} --num-cpus 2 {' '.join(common)}"])
        while True:  # the node has joined once the cluster counts its two CPUs
            assert node.poll() is None, "the worker node did not start (or the folders were not hidden)"
            assert time.monotonic() < deadline, "the worker node did not join"
            status = subprocess.run([ray_cli, "status", "--address", address], capture_output=True, text=True,
                                    env=env, timeout=HANG)
            if "/2.0 CPU" in status.stdout:
                break
            time.sleep(1)
        trained = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_doom.py"), "--scenario", "basic",
                                  "--ray", address, "--workers", "2", "--max-frames", "3000", "--baseline-episodes",
                                  "0", "--final-eval-episodes", "1", "--run-name", "apart"],
                                 capture_output=True, text=True, timeout=HANG, cwd=tmp_path, env=env)
        assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
        assert "stopped (max_frames)" in trained.stdout
        counters = load_checkpoint(tmp_path / "models" / "basic" / "latest.pt")["counters"]
        assert counters["frames"] >= 3000 and counters["worker_restarts"] == 0, counters
        errors = tmp_path / "runs" / "basic" / "apart" / "worker_errors.log"
        assert not errors.exists() or not errors.read_text().strip(), errors.read_text()
    finally:
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)
