"""The package as a user installs and scripts it: `pip install .`, the `doom-a3c` command, the Python API
(`doom_a3c.train`, `doom_a3c.Agent`) and the scenarios as gymnasium ids. Real games, real installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import HANG, ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """This checkout built and installed as a user's `pip install .` would (the dependencies are this test
    environment's own: --no-deps), into a folder of its own, away from the checkout."""
    # Built from a copy of what a source distribution holds, so that the build's own folders (build/,
    # *.egg-info) stay out of the checkout and a file the package needs but the copy lacks fails here.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("doom_a3c", "scenarios", "models/pretrained"):
        shutil.copytree(ROOT / folder, source / folder, ignore=junk)
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(site), str(source)], capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed `doom-a3c` command, run from ``cwd`` with only the installed copy importable."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, str(site / "bin" / "doom-a3c"), *args], capture_output=True, text=True,
                          timeout=HANG, env=env, cwd=cwd)


@pytest.mark.slow
def test_an_installed_copy_carries_its_scenarios_and_models_and_trains_and_plays_from_anywhere(installed, tmp_path):
    """Away from the checkout, the installed package finds its scenario files and shipped models as package
    data, plays the shipped model and trains (its workers and games start from the installed copy)."""
    where = subprocess.run([sys.executable, "-c", "import doom_a3c, doom_a3c.resources as r; "
                            "print(doom_a3c.__file__); print(r.SCENARIOS_DIR); print(r.PRETRAINED_DIR)"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(installed)},
                           cwd=tmp_path, timeout=HANG)
    assert where.returncode == 0, where.stderr
    init, scenarios, models = (Path(line) for line in where.stdout.split())
    package = init.parent
    assert package.is_relative_to(installed) and scenarios.is_relative_to(installed) and models.is_relative_to(installed)
    assert (scenarios / "basic.toml").is_file() and (scenarios / "gym" / "ALE-Pong-v5.toml").is_file()
    assert (models / "basic.pt").is_file()
    assert os.access(package / "envs" / "vizdoom-owned", os.X_OK)  # the engine's launcher stays executable

    listed = run_installed(installed, tmp_path, "list")
    assert listed.returncode == 0 and "health_gathering_supreme" in listed.stdout and "ALE/Pong-v5" in listed.stdout

    played = run_installed(installed, tmp_path, "play", "--episodes", "2")
    assert played.returncode == 0, played.stdout[-2000:] + played.stderr[-2000:]
    assert "with the shipped model" in played.stdout and str(installed) in played.stdout.replace("\n", "")
    assert "mean reward over 2 episodes" in played.stdout

    trained = run_installed(installed, tmp_path, "train", "--max-frames", "3000", "--workers", "1",
                            "--baseline-episodes", "0", "--final-eval-episodes", "1", "--run-name", "inst")
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "training basic:" in trained.stdout and (tmp_path / "models" / "basic" / "latest.pt").is_file()
    assert list((tmp_path / "runs" / "basic" / "inst").glob("events.out.tfevents.*"))


def test_the_command_lists_its_commands_and_refuses_an_unknown_one_in_one_line():
    from doom_a3c.cli import COMMANDS

    done = subprocess.run([sys.executable, "-m", "doom_a3c", "--help"], capture_output=True, text=True, cwd=ROOT,
                          timeout=HANG)
    assert done.returncode == 0 and all(f"  {name} " in done.stdout for name in COMMANDS), done.stdout
    bad = subprocess.run([sys.executable, "-m", "doom_a3c", "trian"], capture_output=True, text=True, cwd=ROOT,
                         timeout=HANG)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown command 'trian'" in bad.stderr
    seeds = subprocess.run([sys.executable, "-m", "doom_a3c", "seeds", "--seeds", "0"], capture_output=True,
                           text=True, cwd=ROOT, timeout=HANG)
    assert seeds.returncode == 2 and seeds.stderr.strip() == "doom-a3c seeds: error: --seeds must be at least 1, got 0"


def test_importing_the_package_loads_no_torch_and_registers_the_scenarios():
    """``import doom_a3c`` stays light (the API's names load torch on first use) and registers the ids."""
    code = ("import sys, gymnasium, doom_a3c; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'doom_a3c/basic-v0' in gymnasium.registry; doom_a3c.Agent; assert 'torch' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=HANG)
    assert done.returncode == 0, done.stderr


def test_an_older_python_gets_one_clear_line():
    code = "import sys; sys.version_info = (3, 10, 12, 'final', 0); import doom_a3c"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=HANG)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"doom_a3c needs Python 3.11 or newer; this is Python {sys.version.split()[0]}"]


def test_settings_are_the_command_lines_own_and_bad_ones_are_refused_before_anything_starts():
    """``doom_a3c.settings``/``train`` apply the scenario's preset as the command line does, then the
    keywords; a wrong name, type or value is a ValueError naming it."""
    import doom_a3c
    from doom_a3c.config import add_config_arguments, config_from_args
    from doom_a3c.envs import ScenarioError, load_env_spec

    import argparse

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    for name, argv, options in [("basic", [], {}), ("ALE/Pong-v5", ["--lr", "1e-3"], {"lr": 1e-3}),
                                ("health_gathering", ["--max-frames", "100000"], {"max_frames": 1e5})]:
        spec = load_env_spec(name)
        cli = config_from_args(parser.parse_args(argv), spec.train)
        cli.scenario = spec.name
        assert doom_a3c.settings(name, **options) == cli
    assert doom_a3c.settings("ALE/Pong-v5").envs_per_worker == 8  # the preset, not the generic default
    for options, message in [({"lr": -1}, "--lr must be positive"), ({"learning_rate": 1}, "unknown setting"),
                             ({"max_frames": 1.5}, "whole number"), ({"lstm": "no"}, "true or false")]:
        with pytest.raises(ValueError, match=message):
            doom_a3c.train("basic", **options)
    with pytest.raises(ScenarioError, match="unknown environment 'nope'"):
        doom_a3c.train("nope")


@pytest.mark.slow
def test_train_runs_a_preset_to_its_budget_and_returns_how_it_ended(tmp_path):
    import doom_a3c

    result = doom_a3c.train("CartPole-v1", max_frames=4000, workers=1, baseline_episodes=0, final_eval_episodes=2,
                            target_reward=1e9, run_name="api")
    assert isinstance(result, doom_a3c.TrainResult)
    assert result.stop_reason == "max_frames" and result.frames >= 4000
    assert result.final_eval["episodes"] == 2 and result.final_eval["mean"] > 0
    assert Path(result.checkpoint_dir, "latest.pt").is_file() and Path(result.run_dir).is_dir()
    agent = doom_a3c.Agent.load(Path(result.checkpoint_dir) / "latest.pt")
    assert agent.name == "CartPole-v1" and agent.play(episodes=1)["episodes"] == 1


def test_the_shipped_agent_plays_and_acts_on_the_gymnasium_env(tmp_path):
    """Agent.load finds the shipped model; play() scores as play.py does; act() drives a game made with
    gymnasium.make, step by step, to the same score as play()'s first episode (same seed, greedy)."""
    import gymnasium

    import doom_a3c

    agent = doom_a3c.Agent.load("basic")
    assert agent.path.name == "basic.pt" and agent.greedy
    played = agent.play(episodes=3, seed=0, gif=tmp_path / "a.gif")
    # basic's shipped model scores 78.5 over 100 greedy episodes; the random agent about -100 (README).
    assert played["episodes"] == 3 and played["mean"] > 50, played
    assert Path(played["gif"]).is_file()
    from doom_a3c.cli import play_main
    from conftest import call_main

    code, out, _ = call_main(play_main, "--episodes", "3", "--seed", "0")
    assert code == 0 and f"mean reward over 3 episodes: {played['mean']:.1f}" in out

    env = gymnasium.make("doom_a3c/basic-v0", seed=0)  # the game play() played: its first episode again
    try:
        obs, _ = env.reset()
        state, done = None, False
        while not done:
            action, state = agent.act(obs, state)
            assert env.action_space.contains(action)
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        assert info["episode"]["r"] == played["rewards"][0]
    finally:
        env.close()


def test_agent_load_says_what_is_missing(tmp_path):
    import doom_a3c
    from doom_a3c.checkpoint import CheckpointError
    from doom_a3c.envs import ScenarioError

    with pytest.raises(FileNotFoundError, match="no model for LunarLander-v3"):
        doom_a3c.Agent.load("LunarLander-v3", models_dir=tmp_path)
    with pytest.raises(ScenarioError, match="unknown environment"):
        doom_a3c.Agent.load("no_such_scenario")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        doom_a3c.Agent.load(tmp_path / "junk.pt")


def test_every_scenario_file_is_a_gymnasium_id_and_basic_passes_the_env_checker():
    import gymnasium
    from gymnasium.utils.env_checker import check_env

    import doom_a3c  # noqa: F401  (registers the ids)
    from doom_a3c.envs import known_scenarios

    assert {f"doom_a3c/{name}-v0" for name in known_scenarios()} <= set(gymnasium.registry)
    env = gymnasium.make("doom_a3c/basic-v0")
    try:
        # The window mode needs a display (tests/test_env.py opens it under Xvfb); the rest is checked here.
        check_env(env.unwrapped, skip_render_check=True)
        assert env.observation_space.shape == (1, 42, 42) and env.observation_space.dtype == np.uint8
    finally:
        env.close()


def test_ray_missing_is_one_clear_line_with_the_install_command(monkeypatch):
    """--ray on an install without the [ray] extra: a ClusterError saying what to install, not an ImportError."""
    from doom_a3c.backends import ClusterError, make_backend
    from doom_a3c.config import TrainConfig

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.delitem(sys.modules, "doom_a3c.backends.ray_cluster", raising=False)
    with pytest.raises(ClusterError, match=r"pip install 'ray>=2.60,<3'"):
        make_backend(TrainConfig(ray="local"), None, None, None, 0, Path("errors.log"))


@pytest.mark.slow
def test_the_readmes_python_example_runs_as_written(tmp_path):
    """The README's Python block, verbatim, as a script file in a folder of its own: it trains basic to
    its 100k-frame budget (or its target), loads the model it trained, plays it and drives the gymnasium id to an episode's end."""
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    example = next(block for block in blocks if "doom_a3c.train(" in block)
    script = tmp_path / "example.py"  # a file, as a user runs it: worker processes import it again
    script.write_text(example)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=HANG,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    stop, frames, _ = lines[-3].split()
    assert stop in ("max_frames", "target") and int(frames) >= (100_000 if stop == "max_frames" else 1)
    float(lines[-2])  # the trained agent's mean over 5 episodes
    assert re.fullmatch(r"\{'r': -?[\d.]+, 'l': \d+\}", lines[-1]), lines[-1]
    assert (tmp_path / "models" / "basic" / "best.pt").is_file()


def test_train_from_a_script_without_a_main_guard_is_one_clear_error(tmp_path):
    """A worker process imports the script again; without `if __name__ == "__main__":` that would be a second
    training in each worker: it is refused in one line that says what to write."""
    script = tmp_path / "unguarded.py"
    script.write_text('import doom_a3c\ndoom_a3c.train("CartPole-v1", max_frames=2000, workers=1, '
                      'baseline_episodes=0, final_eval_episodes=1)\n')
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=HANG,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert 'call it under `if __name__ == "__main__":`' in done.stdout + done.stderr
