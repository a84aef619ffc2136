"""profile_worker.py: one real worker and its real games, timed by section."""

from __future__ import annotations

import os

import pytest

from conftest import ROOT, run_script
from doom_a3c.profiling import SECTIONS, format_profile, profile_worker


def test_the_sections_add_up_and_a_trained_agent_starts_more_episodes():
    """The sections are disjoint parts of each rollout (the rest is what none of them timed); the shipped
    basic model (78.5 greedy) ends its episodes with a kill in a few steps, the untrained one mostly at
    the 75-step timeout, so a trained worker starts several times as many episodes. This process's
    affinity is left as it was."""
    affinity = os.sched_getaffinity(0)
    core = min(affinity)
    untrained = profile_worker("basic", rollouts=3, warmup=1, core=core, raw_seconds=1)
    trained = profile_worker("basic", rollouts=3, warmup=1, core=core, raw_seconds=1,
                             weights=str(ROOT / "models" / "pretrained" / "basic.pt"))
    assert os.sched_getaffinity(0) == affinity
    for figures in (untrained, trained):
        ms = figures["ms_per_rollout"]
        assert set(ms) == {*SECTIONS, "rest"}
        assert all(ms[k] > 0 for k in SECTIONS if k != "reset"), ms
        assert ms["rest"] >= 0 and sum(ms.values()) == pytest.approx(figures["total_ms_per_rollout"])
        assert figures["frames_per_s"] > 0 and figures["rollout_len"] == 30 and figures["envs_per_worker"] == 4
        # The bare game, timed on the same core right after. Not compared with the training step: two windows
        # a second apart, and on a CI machine starved for seconds at a time the bare game's took 42 ms a step.
        assert figures["raw_us_per_step"] > 0
        assert figures["ratio_to_raw"] == pytest.approx(figures["raw_us_per_step"] / figures["us_per_step"])
        table = format_profile(figures)
        assert f"| update (replay, loss, backward, clip, Adam) | {ms['update']:.2f} |" in table
        assert f"{figures['ratio_to_raw']:.2f} of raw" in table
    # 3 rollouts x 30 steps x 4 games = 360 steps: the untrained agent's episodes last up to 75 steps
    # (about 45 measured), the shipped agent's about 7.
    assert trained["steps_per_episode"] is not None and trained["steps_per_episode"] < 20, trained
    assert untrained["steps_per_episode"] is None or untrained["steps_per_episode"] > 2 * trained["steps_per_episode"]
    assert trained["ms_per_rollout"]["reset"] > 0  # timed: each of its rollouts starts episodes (not compared
    # with the untrained worker's: a time, which a busy moment of the machine can swing either way)


@pytest.mark.parametrize("args, message", [
    (["--rollouts", "0"], "--rollouts must be positive"),
    (["--core", "4096"], "--core 4096 is not one this process may run on"),
    (["--scenario", "nowhere"], "unknown environment 'nowhere'"),
    (["--scenario", "defend_the_center", "--weights", str(ROOT / "models" / "pretrained" / "basic.pt")],
     "trained on 'basic', not 'defend_the_center'"),
    (["--weights", "missing.pt"], "checkpoint not found: missing.pt"),
])
def test_bad_input_is_one_clear_line_and_exit_2(args, message):
    result = run_script("profile_worker.py", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
