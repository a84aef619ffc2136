"""Scenarios are data: every shipped file loads, a dropped-in file works, bad ones say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from doom_a3c.envs import ScenarioError, known_scenarios, load_scenario, make_env, scenario_table

REQUIRED = ["basic", "defend_the_center", "defend_the_line", "health_gathering", "health_gathering_supreme",
            "deadly_corridor", "my_way_home", "take_cover"]


def test_required_scenarios_are_shipped():
    assert set(REQUIRED) <= set(known_scenarios())


@pytest.mark.parametrize("name", REQUIRED)
def test_each_shipped_scenario_loads_and_steps(name):
    spec = load_scenario(name)
    assert Path(spec.config).is_file()
    assert spec.num_actions >= 2 and all(len(a) == len(spec.buttons) for a in spec.actions)
    assert spec.frame_skip >= 1 and spec.reward_scale > 0 and spec.target_reward == spec.target_reward
    env = make_env(spec, seed=0)
    try:
        obs, _ = env.reset()
        assert obs.shape == spec.obs_shape
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs.shape == spec.obs_shape and "raw_reward" in info
    finally:
        env.close()


def test_unknown_scenario_lists_the_known_ones():
    with pytest.raises(ScenarioError) as err:
        load_scenario("no_such_scenario")
    message = str(err.value)
    assert "no_such_scenario" in message
    for name in REQUIRED:
        assert name in message


def test_a_scenario_file_given_by_path(tmp_path):
    path = tmp_path / "my_basic.toml"
    path.write_text('config = "basic.cfg"\nbuttons = ["MOVE_LEFT", "MOVE_RIGHT", "ATTACK"]\n'
                    'crop = [0, 0, 0, 0]\nsize = [42, 42]\nframe_skip = 2\ntarget_reward = 50\n'
                    '[train]\nlr = 0.001\n')
    spec = load_scenario(str(path))
    assert spec.name == "my_basic" and spec.obs_shape == (1, 42, 42) and spec.frame_skip == 2
    assert spec.num_actions == 3 and spec.train == {"lr": 0.001}
    env = make_env(spec)
    try:
        assert env.reset()[0].shape == (1, 42, 42)
    finally:
        env.close()


def test_a_file_dropped_into_the_scenarios_folder_is_known(tmp_path):
    (tmp_path / "corridor2.toml").write_text('config = "deadly_corridor.cfg"\n')
    assert known_scenarios(tmp_path) == ["corridor2"]
    spec = load_scenario("corridor2", directory=tmp_path)
    assert spec.buttons  # taken from the .cfg when the file names none
    assert "corridor2" in scenario_table(tmp_path)


@pytest.mark.parametrize("text,fragment", [
    ('config = "basic.cfg"\ncrop = [1, 2]\n', "'crop' must be a list of 4"),
    ('config = "basic.cfg"\nframe_skip = 0\n', "'frame_skip' must be a positive integer"),
    ('config = "basic.cfg"\nbuttons = ["FLY"]\n', "unknown ViZDoom buttons"),
    ('config = "basic.cfg"\nspeed = 3\n', "unknown keys ['speed']"),
    ('config = "nowhere.cfg"\n', "ViZDoom config 'nowhere.cfg' not found"),
    ('buttons = ["ATTACK"]\n', "missing required keys ['config']"),
    ('config = "basic.cfg\n', "cannot read scenario file"),
    ('config = "basic.cfg"\neval_mode = "best"\n', "'eval_mode' must be one of greedy, sampled"),
    ('config = "basic.cfg"\nresize = "cubic"\n', "'resize' must be one of area, linear"),
    ('config = "basic.cfg"\n[shaping]\nMANA = 1\n', "unknown ViZDoom game variable 'MANA'"),
    ('config = "basic.cfg"\nbuttons = ["ATTACK"]\ntap = ["USE"]\n', "'tap' names ['USE'], which are not among"),
    ('config = "basic.cfg"\n[shaping]\nHEALTH = [1, 2, 3]\n', "HEALTH must be a number or [increase, decrease]"),
    ('config = "basic.cfg"\nactions = [[1, 0, "x"]]\n', "'actions' must be a list of lists of numbers"),
    ('config = "basic.cfg"\nactions = [[1, 0]]\n', "every action must have one entry per button (3)"),
    ('config = "basic.cfg"\naction_groups = [["USE"]]\n', "'action_groups' names ['USE'], which are not among"),
    ('config = "basic.cfg"\naction_groups = [["ATTACK"], ["ATTACK"]]\n', "a button in more than one group"),
    ('config = "basic.cfg"\naction_groups = [[]]\n', "'action_groups' must be a list of non-empty lists"),
    ('config = "basic.cfg"\nactions = [[1, 0, 0]]\naction_groups = [["ATTACK"]]\n', "'actions' or 'action_groups'"),
    ('config = "basic.cfg"\ndoom_skill = 6\n', "'doom_skill' must be a Doom skill level from 1 to 5"),
    ('config = "basic.cfg"\ncurriculum = 3\n', "curriculum stages must be [[curriculum]] tables"),
    ('config = "basic.cfg"\n[[curriculum]]\nframes = 10\n', "stage 1 must give exactly 'frames' and 'doom_skill'"),
    ('config = "basic.cfg"\n[[curriculum]]\nframes = 10\ndoom_skill = 0\n', "stage 1's 'doom_skill' must be"),
    ('config = "basic.cfg"\n[[curriculum]]\nframes = 10\ndoom_skill = 1\n[[curriculum]]\nframes = 10\n'
     'doom_skill = 3\n', "curriculum stage 2: 'frames' must be a positive integer, larger than the stage before's"),
])
def test_invalid_scenario_files_name_the_file_and_the_problem(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(str(path))
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_missing_scenario_path():
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario("/nonexistent/place.toml")


def test_table_lists_every_scenario():
    table = scenario_table()
    for name in REQUIRED:
        assert name in table
    assert "INVALID" not in table


SHAPED = {name: spec.shaping for name in REQUIRED if (spec := load_scenario(name)).shaping}
# Scripted actions (indices into each scenario's action list) that move every shaped variable.
SCRIPTS = {
    "health_gathering": [2, 2, 2, 3, 2, 2, 4, 2, 2, 2],  # forward, with a turn now and then: medkits
    "health_gathering_supreme": [2, 2, 2, 3, 2, 2, 4, 2, 2, 2],
    "defend_the_center": [4, 0, 4, 1, 4, 4, 1, 1],  # shoots while turning
    "take_cover": [2],  # standing still: the fireballs hit
    "defend_the_line": [0],  # doing nothing: the fireballs hit
    "deadly_corridor": [3, 2, 2, 2, 4, 4, 2, 2, 2, 3],  # turn and shoot at the shooters: damage taken, a kill
}


def test_every_shaped_scenario_has_a_script_that_exercises_it():
    assert set(SHAPED) == set(SCRIPTS)
    assert SHAPED["health_gathering"] == {"HEALTH": (4.0, 0.0)}  # bonus only: medkits
    assert SHAPED["take_cover"] == {"HEALTH": (0.0, 1.0)}  # penalty only: hits
    assert load_scenario("health_gathering").eval_mode == load_scenario("health_gathering_supreme").eval_mode \
        == "sampled"


@pytest.mark.parametrize("name", sorted(SHAPED))
def test_shaping_follows_the_engines_game_variables(name):
    """A scripted episode: each step's shaped reward is the engine's reward plus each declared game
    variable's change times its weight, the variables read independently from the engine; the logged
    episode return stays the engine's."""
    import vizdoom

    spec = load_scenario(name)
    variables = {v: getattr(vizdoom.GameVariable, v) for v in spec.shaping}
    env = make_env(spec, seed=3)
    try:
        env.reset()
        before = {v: env.game.get_game_variable(g) for v, g in variables.items()}
        raw_total = shaped_total = 0.0
        moved = set()
        script = SCRIPTS[name]
        for step in range(1000):
            _, reward, terminated, truncated, info = env.step(script[step % len(script)])
            expected = info["raw_reward"]
            for v, g in variables.items():
                now = env.game.get_game_variable(g)
                change = now - before[v]
                up, down = spec.shaping[v]
                expected += change * (up if change > 0 else down)
                if change:
                    moved.add(v)
                before[v] = now
            assert info["shaped_reward"] == pytest.approx(expected)
            assert reward == pytest.approx(expected * spec.reward_scale)
            raw_total += info["raw_reward"]
            shaped_total += expected
            if terminated or truncated:
                break
        assert terminated or truncated
        assert moved == set(variables), f"the script never changed {set(variables) - moved}: the test shows nothing"
        assert info["episode"]["r"] == pytest.approx(raw_total)
        assert info["episode"]["shaped"] == pytest.approx(shaped_total) and shaped_total != raw_total
    finally:
        env.close()


def test_delta_button_actions_turn_by_their_angle_per_tic():
    """A delta button's value is degrees a tic (TURN_LEFT_RIGHT_DELTA, positive: right), so one 4-tic step
    of [1, 1] turns 4 degrees right while shooting and [0, -3] 12 degrees left, from rest too (the
    fine-aiming actions defend_the_line and defend_the_center were tried with)."""
    import dataclasses

    import vizdoom

    spec = dataclasses.replace(load_scenario("defend_the_line"), buttons=("ATTACK", "TURN_LEFT_RIGHT_DELTA"),
                               actions=((1, 0), (1, -1), (1, 1), (0, -3), (0, 3)))
    assert spec.frame_skip == 4
    env = make_env(spec, seed=0)
    try:
        env.reset()
        for action, degrees in [(2, -4.0), (3, 12.0), (1, 4.0), (4, -12.0), (0, 0.0)]:
            before = env.game.get_game_variable(vizdoom.GameVariable.ANGLE)
            env.step(action)
            turned = (env.game.get_game_variable(vizdoom.GameVariable.ANGLE) - before + 180) % 360 - 180
            assert turned == pytest.approx(degrees, abs=0.1), (action, turned)
    finally:
        env.close()


def test_a_tapped_button_is_released_after_the_first_tic():
    """defend_the_center taps ATTACK: pressed on a step's first tic only, so the pistol finishes its cycle
    and is ready again instead of re-firing (Doom's re-fire shoots with a spread). Asked to shoot on every
    step for 40 steps, the held trigger re-fires 11 times, the tapped one fires 8 full cycles; every step
    still lasts frame_skip tics."""
    import dataclasses

    import vizdoom

    tapped = load_scenario("defend_the_center")
    attack = tapped.actions.index((0, 1))  # ATTACK alone, no turn
    assert tapped.tap == ("ATTACK",) and tapped.buttons[1] == "ATTACK"
    shots = {}
    for spec in (tapped, dataclasses.replace(tapped, tap=())):
        env = make_env(spec, seed=1)
        try:
            env.reset()
            ammo, start = env.game.get_game_variable(vizdoom.GameVariable.AMMO2), env.game.get_episode_time()
            for _ in range(40):
                env.step(attack)
            assert env.game.get_episode_time() - start == 40 * spec.frame_skip
            assert list(env.game.get_last_action()) == ([0, 0] if spec.tap else [0, 1])
            shots[spec.tap] = ammo - env.game.get_game_variable(vizdoom.GameVariable.AMMO2)
        finally:
            env.close()
    assert shots == {("ATTACK",): 8, (): 11}


def test_unshaped_scenarios_report_no_shaped_reward():
    env = make_env(load_scenario("basic"), seed=0)
    try:
        env.reset()
        _, reward, _, _, info = env.step(0)
        assert "shaped_reward" not in info and reward == pytest.approx(info["raw_reward"] * 0.01)
    finally:
        env.close()


def _run_forward(spec, seeds):
    """Raw returns of episodes that only run forward (deadly_corridor's MOVE_FORWARD), one per seed."""
    forward = [i for i, a in enumerate(spec.actions) if a == tuple(int(b == "MOVE_FORWARD") for b in spec.buttons)]
    env = make_env(spec, seed=0)
    try:
        returns = []
        for seed in seeds:
            env.reset(seed=seed)
            while True:
                *_, terminated, truncated, info = env.step(forward[0])
                if terminated or truncated:
                    returns.append(info["episode"]["r"])
                    break
        return returns
    finally:
        env.close()


def test_a_curriculum_plays_its_stages_skill_and_then_the_scenario_as_declared(tmp_path):
    """deadly_corridor with a two-stage curriculum: the stage for a frame count, and the games each stage
    builds. At skill 1 (half the damage) running straight for the vest gets there (about +2,280); at the
    .cfg's skill 5 the shooters kill it within a few hundred units (this seed: under 500)."""
    path = tmp_path / "corridor.toml"
    path.write_text('config = "deadly_corridor.cfg"\nbuttons = ["MOVE_FORWARD", "ATTACK"]\nsize = [42, 42]\n'
                    '[[curriculum]]\nframes = 1000\ndoom_skill = 1\n'
                    '[[curriculum]]\nframes = 5000\ndoom_skill = 3\n')
    spec = load_scenario(str(path))
    assert spec.curriculum == ((1000, 1), (5000, 3)) and spec.doom_skill == 0
    assert [spec.stage(f) for f in (0, 999, 1000, 4999, 5000, 10**9)] == [0, 0, 1, 1, 2, 2]
    assert spec.at_stage(0).doom_skill == 1 and spec.at_stage(1).doom_skill == 3 and spec.at_stage(2) is spec
    easy, declared = _run_forward(spec.at_stage(0), [100, 103]), _run_forward(spec, [100, 103])
    assert min(easy) > 2000 and max(declared) < 500, (easy, declared)


def test_action_groups_make_every_combination_of_one_button_or_none_per_group(tmp_path):
    """Sample Factory's extended Doom action space (turn x move x strafe x attack: 3 x 3 x 3 x 2 = 54), and
    a button left out of every group is never pressed."""
    path = tmp_path / "combos.toml"
    path.write_text('config = "deadly_corridor.cfg"\nbuttons = ["TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD", '
                    '"MOVE_BACKWARD", "MOVE_LEFT", "MOVE_RIGHT", "ATTACK", "USE"]\naction_groups = [["TURN_LEFT", '
                    '"TURN_RIGHT"], ["MOVE_FORWARD", "MOVE_BACKWARD"], ["MOVE_LEFT", "MOVE_RIGHT"], ["attack"]]\n')
    spec = load_scenario(str(path))
    assert spec.num_actions == 54 and len(set(spec.actions)) == 54
    assert spec.actions[0] == (0,) * 8 and spec.actions[1] == (0, 0, 0, 0, 0, 0, 1, 0)  # none, then attack
    assert spec.actions[-1] == (0, 1, 0, 1, 0, 1, 1, 0)  # the last choice of every group
    assert all(a[0] + a[1] <= 1 and a[2] + a[3] <= 1 and a[4] + a[5] <= 1 and a[7] == 0 for a in spec.actions)
    assert spec.action_groups[-1] == ("ATTACK",)


def test_the_progress_line_and_tensorboard_show_the_curriculum_stage(tmp_path):
    """While a stage lasts the progress line names it and charts/curriculum_skill logs its skill; past the
    last one (and for a scenario without a curriculum) neither says anything."""
    from torch.utils.tensorboard import SummaryWriter

    from conftest import scalars
    from doom_a3c.config import TrainConfig
    from doom_a3c.trainer import Trainer

    path = tmp_path / "corridor.toml"
    path.write_text('config = "deadly_corridor.cfg"\n[[curriculum]]\nframes = 1000\ndoom_skill = 1\n'
                    '[[curriculum]]\nframes = 5000\ndoom_skill = 3\n')
    trainer = Trainer(TrainConfig(), load_scenario(str(path)))
    trainer.summaries.writer = SummaryWriter(str(tmp_path / "run"))
    notes = [trainer._stage_note(frames) for frames in (0, 2000, 5000)]
    trainer.summaries.writer.close()
    assert notes == [" | curriculum stage 1 of 2: skill 1", " | curriculum stage 2 of 2: skill 3", ""]
    assert [(e.step, e.value) for e in scalars(tmp_path / "run", "charts/curriculum_skill")] == [(0, 1), (2000, 3)]
    assert Trainer(TrainConfig(), load_scenario("basic"))._stage_note(0) == ""


def test_a_carried_scenario_plays_on_a_machine_that_has_none_of_its_files(tmp_path, monkeypatch):
    """What the Ray backend sends to worker nodes: a scenario of the user's own (its TOML, .cfg and .wad in a
    folder of theirs) carries its .cfg and the .wad the .cfg names; where that folder does not exist (another
    machine; here, removed) the game is written into a folder of that machine's and plays from there."""
    import shutil

    import vizdoom

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "machine"))  # this test's own "/tmp"
    (tmp_path / "machine").mkdir()
    own = tmp_path / "mine"
    own.mkdir()
    shutil.copy(Path(vizdoom.scenarios_path) / "basic.cfg", own / "mine.cfg")  # names basic.wad, beside it
    shutil.copy(Path(vizdoom.scenarios_path) / "basic.wad", own / "basic.wad")
    (own / "mine.toml").write_text('config = "mine.cfg"\nresolution = "RES_160X120"\nsize = [42, 42]\n')
    spec = load_scenario(str(own / "mine.toml")).carried()
    assert [name for name, _ in spec.files] == ["mine.cfg", "basic.wad"]
    assert "files" not in spec.to_dict()  # checkpoints and logs keep paths, not the game's bytes
    shutil.rmtree(own)

    there = spec.on_this_machine()
    assert Path(there.config).is_file() and Path(there.config).is_relative_to(tmp_path / "machine")
    assert (Path(there.config).parent / "basic.wad").read_bytes() == dict(spec.files)["basic.wad"]
    assert spec.on_this_machine().config == there.config  # one folder per content, shared by every game
    env = make_env(there, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        env.step(0)
        assert obs.shape == env.observation_space.shape == (1, 42, 42)
    finally:
        env.close()
    assert load_scenario("basic").on_this_machine() == load_scenario("basic")  # nothing carried: itself
