"""The A3C worker on the real game: state carried across rollouts and replayed, truncation bootstrapped,
gradients landing on the shared model. The worker runs in this process so its buffers can be inspected."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import GONE
from doom_a3c.config import TrainConfig
from doom_a3c.model import ActorCritic
from doom_a3c.worker import Worker, make_shared_handles


def _worker(spec, **overrides):
    torch.manual_seed(0)
    cfg = TrainConfig(workers=1, **overrides)
    model = ActorCritic(spec.obs_shape, spec.num_actions, cfg.hidden_size)
    handles = make_shared_handles(model, cfg)
    worker = Worker(0, cfg, spec, handles)
    worker.sync_weights()
    return worker


class _RecordOutcome:
    """Passes every call through to the real environment and remembers how each step ended."""

    def __init__(self, env):
        self.env, self.log = env, []

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        result = self.env.step(action)
        self.log.append((result[1], result[2], result[3]))
        return result

    def close(self):
        self.env.close()


def _start(worker):
    obs = torch.stack([torch.from_numpy(env.reset()[0]) for env in worker.envs])
    return obs, worker.model.initial_state(len(worker.envs)), torch.ones(len(worker.envs))


def test_update_replays_the_rollout_from_the_state_it_started_in(basic_spec):
    worker = _worker(basic_spec, envs_per_worker=2, rollout_len=20)
    try:
        obs, state, start = _start(worker)
        obs, state, start, _ = worker.collect(obs, state, start)  # the second rollout starts mid-episode
        first_state = (state[0].clone(), state[1].clone())
        worker.collect(obs, state, start)
        assert torch.equal(worker.state_in[0][0], first_state[0])  # the recorded states start there
        _, replayed, _ = worker.model.unroll(worker.obs_buf, first_state, worker.starts)
        assert torch.allclose(replayed, worker.values, atol=1e-5)  # exactly what was seen while acting
        # The update's replay through the recorded states: the same values and the same gradients.
        grads = []
        for recorded in (None, worker.state_in):
            worker.model.zero_grad()
            params, values, _ = worker.model.unroll(worker.obs_buf, first_state, worker.starts, recorded)
            assert torch.allclose(values, worker.values, atol=1e-5)
            (params.logsumexp(2).sum() + values.square().sum()).backward()
            grads.append([p.grad.clone() for p in worker.model.parameters()])
        for a, b in zip(*grads):
            assert (a - b).abs().max() <= 1e-5 * max(1.0, float(b.abs().max()))
        zeros = worker.model.initial_state(2)
        _, from_zeros, _ = worker.model.unroll(worker.obs_buf, zeros, worker.starts)
        assert not torch.allclose(from_zeros, worker.values, atol=1e-3)  # so the carried state matters
    finally:
        worker.close()


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "normalize-returns"])
def test_truncation_bootstraps_and_termination_does_not(basic_spec, normalize):
    """A timeout adds gamma * V(where it was cut) to its reward, a death nothing. With --normalize-returns the
    game's own reward is divided by the running standard deviation of the discounted return (here checked
    against the returns the games paid, computed again from the log), and the bootstrap, already in the
    critic's units, is not."""
    import numpy as np

    spec = dataclasses.replace(basic_spec, timeout=60)  # 15 steps, so several endings per rollout
    worker = _worker(spec, envs_per_worker=2, rollout_len=30, normalize_returns=normalize)
    gamma, returns, paid = worker.cfg.gamma, [0.0, 0.0], []
    with torch.no_grad():  # a critic that says V(s) = 3 everywhere makes the bootstrap visible
        worker.model.value.weight.zero_()
        worker.model.value.bias.fill_(3.0)
    worker.envs = [_RecordOutcome(env) for env in worker.envs]
    try:
        obs, state, start = _start(worker)
        seen = {"terminated": 0, "truncated": 0}
        for _ in range(4):
            for env in worker.envs:
                env.log.clear()
            obs, state, start, _ = worker.collect(obs, state, start)
            std = worker.normalizer.std if normalize else 1.0
            for i, env in enumerate(worker.envs):
                for t, (scaled, terminated, truncated) in enumerate(env.log):
                    returns[i] = gamma * returns[i] + scaled
                    paid.append(returns[i])
                    if terminated or truncated:
                        returns[i] = 0.0
                    if truncated:
                        seen["truncated"] += 1
                        assert worker.rewards[t, i] == pytest.approx(scaled / std + gamma * 3.0, rel=1e-5)
                    else:
                        seen["terminated"] += terminated
                        assert worker.rewards[t, i] == pytest.approx(scaled / std, rel=1e-5)
                    assert worker.dones[t, i] == float(terminated or truncated)
        assert seen["truncated"] > 0
        if normalize:
            assert worker.normalizer.std == pytest.approx(np.std(paid), rel=1e-3) and abs(np.std(paid) - 1) > 0.05
        else:
            assert worker.normalizer is None
    finally:
        worker.close()


def test_the_entropy_bonus_anneals_along_the_frames_trained_on(basic_spec):
    """--entropy-beta-end: a straight line from --entropy-beta at frame 0 to the end value at --max-frames,
    held there after; the worker's update uses and reports the value for the frames trained on so far."""
    from doom_a3c.worker import scheduled_entropy_beta

    cfg = TrainConfig(entropy_beta=0.01, entropy_beta_end=0.002, max_frames=1000)
    assert [scheduled_entropy_beta(cfg, f) for f in (0, 500, 1000, 5000)] == pytest.approx([0.01, 0.006, 0.002, 0.002])
    assert scheduled_entropy_beta(TrainConfig(entropy_beta=0.02, max_frames=1000), 900) == 0.02  # constant
    worker = _worker(basic_spec, envs_per_worker=1, rollout_len=5, entropy_beta_end=0.0, max_frames=10**6)
    try:
        worker.shared.add_frames(0, 750_000)
        obs, state, start = _start(worker)
        worker.collect(obs, state, start)
        stats = worker.update(torch.zeros(1))
    finally:
        worker.close()
    assert stats["charts/entropy_beta"] == pytest.approx(0.0025)


def test_update_steps_the_shared_model_and_reports(basic_spec):
    worker = _worker(basic_spec, envs_per_worker=1, rollout_len=10)
    shared = worker.shared
    before = [p.detach().clone() for p in shared.model.parameters()]
    try:
        obs, state, start = _start(worker)
        obs, state, start, _ = worker.collect(obs, state, start)
        with torch.inference_mode():
            _, last_value, _ = worker.model(obs, state, start)
        stats = worker.update(last_value.clone())
    finally:
        worker.close()
    assert [int(step) for step in shared.optimizer.steps] == [1] * len(list(shared.model.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before, shared.model.parameters()))
    assert stats["losses/grad_norm"] > 0 and set(stats) >= {"losses/policy", "losses/value", "losses/entropy"}


def _claim_core(preferred: int, claims_dir, conn) -> None:
    """A process that claims a core, reports it and its affinity, then holds the claim until told to end
    (or killed); it starts a child the way a worker starts its games, to show the child inherits the pin."""
    import os
    import subprocess
    import sys

    from doom_a3c.affinity import pin_to_free_core

    core = pin_to_free_core(preferred, claims_dir)
    child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    conn.send((core, sorted(os.sched_getaffinity(0)), child))
    conn.recv()


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs two cores")
def test_workers_claim_cores_of_their_own_and_a_dead_one_lets_its_core_go(tmp_path):
    import multiprocessing as mp
    import os
    import signal

    cores = sorted(os.sched_getaffinity(0))
    ctx = mp.get_context("spawn")

    def start(preferred: int):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_claim_core, args=(preferred, tmp_path, child), daemon=True)
        process.start()
        return process, parent, parent.recv()

    # Every claimant prefers the first core: each takes the next free one, its games inherit the pin.
    claimants = [start(0) for _ in cores]
    taken = [core for _, _, (core, _, _) in claimants]
    assert sorted(taken) == cores
    for _, _, (core, affinity, child) in claimants:
        assert affinity == [core] and child == str([core])
    # No core left: the next one runs unpinned, on every core.
    extra, extra_conn, (core, affinity, _) = start(0)
    assert core is None and affinity == cores
    extra_conn.send("end")
    extra.join(GONE)
    # A claimant killed with SIGKILL lets its core go (the kernel drops its lock); a newcomer takes it.
    victim = claimants.pop(len(claimants) // 2)
    os.kill(victim[0].pid, signal.SIGKILL)
    victim[0].join(GONE)
    newcomer = start(0)
    assert newcomer[2][0] == victim[2][0]
    for process, conn, _ in claimants + [newcomer]:
        conn.send("end")
        process.join(GONE)


def test_a_curriculum_stage_ends_with_new_games_at_the_next_skill(tmp_path):
    """Each game starts at its curriculum stage's skill (ViZDoom 1.2 ignores one set on a running game); once
    the frames trained on pass the stage's end, each game is replaced at its next episode by one of the next
    stage, and past the last stage the games play the scenario as declared."""
    from doom_a3c.envs import load_scenario

    path = tmp_path / "corridor.toml"
    path.write_text('config = "deadly_corridor.cfg"\nbuttons = ["MOVE_FORWARD", "ATTACK"]\nsize = [42, 42]\n'
                    '[[curriculum]]\nframes = 1000\ndoom_skill = 1\n'
                    '[[curriculum]]\nframes = 2000\ndoom_skill = 3\n')
    spec = load_scenario(str(path))
    worker = _worker(spec, envs_per_worker=2, rollout_len=10)
    try:
        assert [env.scenario.doom_skill for env in worker.envs] == [1, 1] and worker.game_stages == [0, 0]
        first = list(worker.envs)
        worker._reset_game(0)
        assert worker.envs[0] is first[0]  # still in stage 1: the same game
        for frames, skill, stage in ((1500, 3, 1), (3000, 0, 2)):
            worker.shared.add_frames(0, frames - worker.shared.total_frames())
            for i in range(2):
                before = worker.envs[i]
                assert worker._reset_game(i).shape == spec.obs_shape
                assert worker.envs[i] is not before and worker.envs[i].scenario.doom_skill == skill
            assert worker.game_stages == [stage, stage]
    finally:
        worker.close()
