"""The scenario table: each ViZDoom scenario is a TOML file in ``scenarios/``, loaded into a ScenarioSpec.

Scenarios are data, not code (Sample Factory's ``DOOM_ENVS`` table): a user adds one by dropping a
``.toml`` file into ``scenarios/`` or by passing the file's path to ``--scenario``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doom_a3c.resources import SCENARIOS_DIR


class ScenarioError(ValueError):
    """A scenario that cannot be found or whose file is invalid."""


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything needed to build one scenario's environment, plus its training defaults."""

    name: str
    config: str  # absolute path of the ViZDoom .cfg file
    description: str = ""
    buttons: tuple[str, ...] = ()  # empty: the buttons the .cfg declares
    actions: tuple[tuple[float, ...], ...] = ()  # button vectors; empty: one action per button
    # Instead of listing actions: groups of buttons, each pressing none or one of its own, every combination
    # an action (Sample Factory's Tuple of Discrete spaces, flattened: [[TURN_LEFT, TURN_RIGHT], [ATTACK]] is
    # 3 x 2 = 6 actions, the first group varying slowest).
    action_groups: tuple[tuple[str, ...], ...] = ()
    # Buttons pressed on the first tic of a step only, then released for the rest of it: a tap, not a hold.
    # Doom's pistol shoots straight only when its trigger was released since the last shot.
    tap: tuple[str, ...] = ()
    resolution: str = "RES_160X120"
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)  # pixels cut from top, bottom, left, right
    size: tuple[int, int] = (84, 84)  # (height, width) after resizing
    # "area" averages the pixels each output pixel covers (no aliasing); "linear" interpolates between the
    # nearest four (about 5x cheaper at a non-integer factor such as basic's 100 -> 42, a little aliasing).
    resize: str = "area"
    grayscale: bool = True
    frame_skip: int = 4
    reward_scale: float = 1.0
    timeout: int = 0  # episode timeout in tics; 0: the .cfg's own
    target_reward: float = float("inf")  # raw evaluation mean at which training stops
    eval_mode: str = "greedy"  # how evaluations pick actions: "greedy" (most likely) or "sampled"
    # Reward shaping from game variables: name -> (weight per unit increase, weight per unit decrease).
    # The learner sees raw + shaping; every report (logs, evaluation, target, play.py) stays raw.
    shaping: dict[str, tuple[float, float]] = field(default_factory=dict)
    doom_skill: int = 0  # the skill level (1-5) games start at; 0: the .cfg's own
    # Training stages played before the scenario as declared: (frames, doom_skill) pairs, in order. Training
    # games play a stage's skill until all workers together have trained on that many frames; evaluations,
    # the target, GIFs and play.py always play the scenario as declared.
    curriculum: tuple[tuple[int, int], ...] = ()
    train: dict[str, Any] = field(default_factory=dict)  # overrides of TrainConfig defaults
    source: str = ""  # the file this spec was read from
    # The game's own files inside the spec, as (name, bytes): the .cfg and the files beside it that it names
    # (its .wad). Empty but where ``carried`` filled it, for machines that share no files with this one.
    files: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """Shape of one observation, channels first."""
        return (1 if self.grayscale else 3, self.size[0], self.size[1])

    @property
    def num_actions(self) -> int:
        """Size of the discrete action set."""
        return len(self.actions)

    def stage(self, frames: int) -> int:
        """The curriculum stage training games play after ``frames`` frames; ``len(curriculum)``: none left."""
        return next((k for k, (until, _) in enumerate(self.curriculum) if frames < until), len(self.curriculum))

    def at_stage(self, stage: int) -> ScenarioSpec:
        """This scenario as curriculum stage ``stage`` plays it (past the last: as declared)."""
        if stage >= len(self.curriculum):
            return self
        return dataclasses.replace(self, doom_skill=self.curriculum[stage][1])

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists, numbers, strings) for checkpoints and logs (without carried files)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "files"}

    def carried(self) -> ScenarioSpec:
        """This spec with its game inside it: the .cfg and each file beside it that the .cfg names (its .wad),
        so that a worker on a machine that has neither this checkout nor this Python environment (the bundled
        scenarios live in vizdoom's own folder, wherever it is installed) can play it; see ``on_this_machine``.
        Files the .cfg names by absolute path stay where they are: every machine needs them there."""
        config = Path(self.config)
        files = [(config.name, config.read_bytes())]
        for line in config.read_text(errors="replace").splitlines():
            key, equals, value = line.partition("=")
            value = value.split("#")[0].strip()
            named = config.parent / value
            if (equals and value and not os.path.isabs(value) and ".." not in Path(value).parts
                    and named.is_file() and named != config):
                files.append((value, named.read_bytes()))
        return dataclasses.replace(self, files=tuple(files))

    def on_this_machine(self) -> ScenarioSpec:
        """Where this spec carries its files, they are written into a folder of this machine's (one per content,
        shared by every game here; written beside and renamed, so that games starting at once never read half
        a file) and the spec plays them from there. Without carried files: the spec itself."""
        if not self.files:
            return self
        digest = hashlib.sha256()
        for name, data in self.files:
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        # A folder of this user's own (another user's files, or links, never take its place).
        user_folder = Path(tempfile.gettempdir()) / f"doom_a3c-scenarios-{os.getuid()}"
        user_folder.mkdir(mode=0o700, exist_ok=True)
        if user_folder.is_symlink() or user_folder.stat().st_uid != os.getuid():
            raise ScenarioError(f"{user_folder} is not this user's own folder: remove it")
        folder = user_folder / digest.hexdigest()[:16]
        for name, data in self.files:
            target = folder / name
            if target.is_file() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            partial.write_bytes(data)
            os.replace(partial, target)
        return dataclasses.replace(self, config=str(folder / self.files[0][0]))


_KNOWN_KEYS = {f.name for f in dataclasses.fields(ScenarioSpec)} - {"name", "source", "files"}
EVAL_MODES = ("greedy", "sampled")
RESIZE_MODES = ("area", "linear")
_REQUIRED_KEYS = {"config"}


def known_scenarios(directory: Path = SCENARIOS_DIR) -> list[str]:
    """Names of the scenarios shipped in ``directory``, sorted."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def _vizdoom_scenarios_path() -> str:
    import vizdoom  # imported lazily: listing scenarios should not need the engine

    return vizdoom.scenarios_path


def _resolve_config(config: str, scenario_file: Path) -> str:
    """A config beside the scenario file wins; otherwise it is one of ViZDoom's bundled scenarios."""
    candidates = [Path(config)] if os.path.isabs(config) else [
        scenario_file.parent / config,
        Path(_vizdoom_scenarios_path()) / config,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    tried = ", ".join(str(c) for c in candidates)
    raise ScenarioError(f"{scenario_file}: ViZDoom config '{config}' not found (looked in: {tried})")


def _default_actions(num_buttons: int) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(i == j) for j in range(num_buttons)) for i in range(num_buttons))


def _cfg_buttons(config_path: str) -> tuple[str, ...]:
    """The buttons a ViZDoom .cfg declares, read by the engine's own parser (no game is started)."""
    import vizdoom

    game = vizdoom.DoomGame()
    game.load_config(config_path)
    return tuple(b.name for b in game.get_available_buttons())


def _shaping(table: Any, path: Path) -> dict[str, tuple[float, float]]:
    """The [shaping] table: ``HEALTH = 0.01`` (both ways) or ``HEALTH = [0.5, 0.0]`` (increase, decrease)."""
    import vizdoom

    if not isinstance(table, dict):
        raise ScenarioError(f"{path}: [shaping] must be a table of game variables")
    weights = {}
    for name, value in table.items():
        if not hasattr(vizdoom.GameVariable, str(name).upper()):
            raise ScenarioError(f"{path}: [shaping]: unknown ViZDoom game variable '{name}'")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            up = down = float(value)
        elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            up, down = float(value[0]), float(value[1])
        else:
            raise ScenarioError(f"{path}: [shaping] {name} must be a number or [increase, decrease] weights, "
                                f"got {value!r}")
        weights[str(name).upper()] = (up, down)
    return weights


def _skill(value: Any, where: str, path: Path) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5):
        raise ScenarioError(f"{path}: {where} must be a Doom skill level from 1 to 5, got {value!r}")
    return value


def _curriculum(stages: Any, path: Path) -> tuple[tuple[int, int], ...]:
    """``[[curriculum]]`` tables, each ``frames = N`` (the stage lasts until N frames in all) and
    ``doom_skill = S``, their frames increasing."""
    if not (isinstance(stages, list) and all(isinstance(t, dict) for t in stages)):
        raise ScenarioError(f"{path}: curriculum stages must be [[curriculum]] tables")
    out: list[tuple[int, int]] = []
    for k, stage in enumerate(stages, 1):
        if set(stage) != {"frames", "doom_skill"}:
            raise ScenarioError(f"{path}: curriculum stage {k} must give exactly 'frames' and 'doom_skill', "
                                f"got {sorted(stage)}")
        frames = stage["frames"]
        if not (isinstance(frames, int) and not isinstance(frames, bool) and frames > (out[-1][0] if out else 0)):
            raise ScenarioError(f"{path}: curriculum stage {k}: 'frames' must be a positive integer, larger "
                                f"than the stage before's, got {frames!r}")
        out.append((frames, _skill(stage["doom_skill"], f"curriculum stage {k}'s 'doom_skill'", path)))
    return tuple(out)


def _group_actions(groups: Any, buttons: tuple[str, ...], path: Path) -> tuple[tuple[str, ...], ...]:
    """Validated ``action_groups``: lists of button names among ``buttons``, no button in two groups."""
    if not (isinstance(groups, list) and groups and all(
            isinstance(g, list) and g and all(isinstance(b, str) for b in g) for g in groups)):
        raise ScenarioError(f"{path}: 'action_groups' must be a list of non-empty lists of button names, "
                            f"got {groups!r}")
    groups = tuple(tuple(b.upper() for b in g) for g in groups)
    named = [b for g in groups for b in g]
    if set(named) - set(buttons):
        raise ScenarioError(f"{path}: 'action_groups' names {sorted(set(named) - set(buttons))}, which are not "
                            f"among the buttons {list(buttons)}")
    if len(named) != len(set(named)):
        raise ScenarioError(f"{path}: 'action_groups' names a button in more than one group")
    return groups


def _combinations(groups: tuple[tuple[str, ...], ...], buttons: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """Every action the groups make: one choice per group (none, or one of its buttons)."""
    choices = [(None, *g) for g in groups]
    return tuple(tuple(int(b in pick) for b in buttons) for pick in itertools.product(*choices))


def _pair(value: Any, name: str, path: Path, length: int) -> tuple[int, ...]:
    if not (isinstance(value, list) and len(value) == length and all(isinstance(v, int) and v >= 0 for v in value)):
        raise ScenarioError(f"{path}: '{name}' must be a list of {length} non-negative integers, got {value!r}")
    return tuple(value)


def read_toml(path: Path, what: str, known_keys: set[str]) -> dict[str, Any]:
    """A TOML file's top-level table; ScenarioError naming the file if unreadable or with unknown keys."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ScenarioError(f"{path}: cannot read {what} file ({err})") from err
    unknown = set(data) - known_keys
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(known_keys)}")
    return data


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Rows of strings as aligned columns under a ruled header; the last column is left ragged."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 11)
    return "\n".join(lines)


def load_scenario_file(path: Path) -> ScenarioSpec:
    """Parse and validate one scenario file."""
    data = read_toml(path, "scenario", _KNOWN_KEYS)
    missing = _REQUIRED_KEYS - set(data)
    if missing:
        raise ScenarioError(f"{path}: missing required keys {sorted(missing)}")

    config = _resolve_config(str(data["config"]), path)
    buttons = tuple(str(b).upper() for b in data.get("buttons", ())) or _cfg_buttons(config)
    if not buttons:
        raise ScenarioError(f"{path}: no buttons given and none found in {config}")
    import vizdoom

    bad = [b for b in buttons if not hasattr(vizdoom.Button, b)]
    if bad:
        raise ScenarioError(f"{path}: unknown ViZDoom buttons {bad}")
    actions = data.get("actions", [])
    groups = ()
    if "action_groups" in data:
        if actions:
            raise ScenarioError(f"{path}: give 'actions' or 'action_groups', not both")
        groups = _group_actions(data["action_groups"], buttons, path)
        actions = [list(a) for a in _combinations(groups, buttons)]
    # Binary buttons take 0/1; delta buttons (TURN_LEFT_RIGHT_DELTA, ...) take a signed amount per tic.
    if not (isinstance(actions, list) and all(isinstance(a, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in a) for a in actions)):
        raise ScenarioError(f"{path}: 'actions' must be a list of lists of numbers, got {actions!r}")
    actions = tuple(tuple(a) for a in actions) or _default_actions(len(buttons))
    if any(len(a) != len(buttons) for a in actions):
        raise ScenarioError(f"{path}: every action must have one entry per button ({len(buttons)})")
    tap = data.get("tap", [])
    if not (isinstance(tap, list) and all(isinstance(b, str) for b in tap)):
        raise ScenarioError(f"{path}: 'tap' must be a list of button names, got {tap!r}")
    tap = tuple(b.upper() for b in tap)
    if set(tap) - set(buttons):
        raise ScenarioError(f"{path}: 'tap' names {sorted(set(tap) - set(buttons))}, which are not among the "
                            f"buttons {list(buttons)}")
    resolution = str(data.get("resolution", "RES_160X120"))
    if not hasattr(vizdoom.ScreenResolution, resolution):
        raise ScenarioError(f"{path}: unknown resolution '{resolution}'")
    frame_skip = data.get("frame_skip", 4)
    if not isinstance(frame_skip, int) or frame_skip < 1:
        raise ScenarioError(f"{path}: 'frame_skip' must be a positive integer, got {frame_skip!r}")
    size = _pair(data.get("size", [84, 84]), "size", path, 2)
    if min(size) < 16:
        raise ScenarioError(f"{path}: 'size' must be at least 16x16, got {list(size)}")
    resize = str(data.get("resize", "area"))
    if resize not in RESIZE_MODES:
        raise ScenarioError(f"{path}: 'resize' must be one of {', '.join(RESIZE_MODES)}, got '{resize}'")
    train = data.get("train", {})
    if not isinstance(train, dict):
        raise ScenarioError(f"{path}: [train] must be a table")
    eval_mode = str(data.get("eval_mode", "greedy"))
    if eval_mode not in EVAL_MODES:
        raise ScenarioError(f"{path}: 'eval_mode' must be one of {', '.join(EVAL_MODES)}, got '{eval_mode}'")
    return ScenarioSpec(
        name=path.stem,
        config=config,
        description=str(data.get("description", "")),
        buttons=buttons,
        actions=actions,
        action_groups=groups,
        tap=tap,
        resolution=resolution,
        crop=_pair(data.get("crop", [0, 0, 0, 0]), "crop", path, 4),
        size=size,
        resize=resize,
        grayscale=bool(data.get("grayscale", True)),
        frame_skip=frame_skip,
        reward_scale=float(data.get("reward_scale", 1.0)),
        timeout=int(data.get("timeout", 0)),
        target_reward=float(data.get("target_reward", float("inf"))),
        eval_mode=eval_mode,
        shaping=_shaping(data.get("shaping", {}), path),
        doom_skill=_skill(data["doom_skill"], "'doom_skill'", path) if "doom_skill" in data else 0,
        curriculum=_curriculum(data.get("curriculum", []), path),
        train=dict(train),
        source=str(path.resolve()),
    )


def load_scenario(name_or_path: str, directory: Path = SCENARIOS_DIR) -> ScenarioSpec:
    """Load a scenario by name (a file in ``scenarios/``) or by the path of a ``.toml`` file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or os.sep in name_or_path:
        if not path.is_file():
            raise ScenarioError(f"scenario file not found: {name_or_path}")
        return load_scenario_file(path)
    candidate = directory / f"{name_or_path}.toml"
    if not candidate.is_file():
        known = ", ".join(known_scenarios(directory)) or "(none)"
        raise ScenarioError(f"unknown scenario '{name_or_path}'; known scenarios: {known}")
    return load_scenario_file(candidate)


def scenario_table(directory: Path = SCENARIOS_DIR) -> str:
    """A human-readable table of the shipped scenarios, for ``--list-scenarios``."""
    rows = [("name", "actions", "frame skip", "reward scale", "target", "evaluation", "description")]
    for name in known_scenarios(directory):
        try:
            spec = load_scenario(name, directory)
        except ScenarioError as err:
            rows.append((name, "-", "-", "-", "-", "-", f"INVALID: {err}"))
            continue
        rows.append((name, str(spec.num_actions), str(spec.frame_skip), f"{spec.reward_scale:g}",
                     f"{spec.target_reward:g}", spec.eval_mode + (", shaped" if spec.shaping else ""),
                     spec.description))
    return format_table(rows)


__all__ = ["ScenarioSpec", "ScenarioError", "load_scenario", "load_scenario_file", "known_scenarios",
           "scenario_table", "SCENARIOS_DIR"]
