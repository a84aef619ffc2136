"""The README and the docs pages it links to say only what the checkout has: links and anchors that resolve,
script commands with options their script accepts, options tables that match the parser and the presets,
excerpts of scenario files that match the files. Fast: no game, no training (each script's options come from
its own `--help`, run once)."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import HANG, ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
SCRIPTS = {p.stem for p in (ROOT / "scripts").glob("*.py")}
MAX_README_LINES = 320

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
# A mention of a script: `python scripts/NAME.py ARGS`, `scripts/NAME.py ARGS` or a bare `NAME.py ARGS`.
SCRIPT = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*)([A-Za-z_]\w*)\.py(?![\w/])")
OPTION = re.compile(r"^[\[(]?(--[A-Za-z][\w-]*)")
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _prose(text: str) -> str:
    """The page without its fenced code blocks (links and headings inside them are not links or headings)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, punctuation dropped, spaces to hyphens."""
    text = LINK.sub(lambda m: m.group(1), heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def _anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for match in HEADING.finditer(_prose(_text(path))):
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(out)


def _links(path: Path) -> list[str]:
    return [m.group(2) for m in LINK.finditer(_prose(_text(path)))]


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target))


def _bad_links(path: Path) -> tuple[list[str], int, int]:
    """(problems, relative links checked, anchors checked) for one page."""
    problems, files, anchors = [], 0, 0
    for target in _links(path):
        if _is_external(target):
            continue
        where, _, anchor = target.partition("#")
        dest = (path.parent / where).resolve() if where else path
        if where:
            files += 1
            if not dest.exists():
                shown = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
                problems.append(f"{path.name}: link to {target}: {shown} does not exist")
                continue
        if anchor:
            if dest.suffix != ".md" or dest.is_dir():
                continue
            anchors += 1
            if anchor not in _anchors(dest):
                problems.append(f"{path.name}: link to {target}: no heading '{anchor}' in {dest.name} "
                                f"(it has: {', '.join(sorted(_anchors(dest)))})")
    return problems, files, anchors


# -- links ----------------------------------------------------------------------------------------------------

def test_every_relative_link_and_anchor_of_the_readme_resolves():
    problems, files, anchors = _bad_links(README)
    assert not problems, "\n".join(problems)
    # A README that links to nothing would pass the check above: it links to its docs pages, the shipped
    # models' table, its pictures and its own sections.
    assert files >= 10 and anchors >= 5, (files, anchors)


def test_every_relative_link_and_anchor_of_the_docs_pages_resolves():
    problems, files, anchors = [], 0, 0
    for page in DOCS:
        bad, f, a = _bad_links(page)
        problems += bad
        files, anchors = files + f, anchors + a
    assert not problems, "\n".join(problems)
    assert files >= 10 and anchors >= 3, (files, anchors)


def test_each_docs_page_the_readme_links_to_has_a_title_and_links_back():
    targets = [t.partition("#")[0] for t in _links(README) if not _is_external(t)]
    linked = {(ROOT / t).resolve() for t in targets if t.startswith("docs/") and t.endswith(".md")}
    pages = [p for p in linked if p.name != "doom_results.md"]  # that one is written by scripts/doom_results.py
    assert len(pages) >= 4, sorted(p.name for p in pages)
    for page in pages:
        lines = [line for line in _text(page).splitlines() if line.strip()]
        assert lines[0].startswith("# "), f"{page.name}: the first line is not a title: {lines[0]!r}"
        assert "../README.md" in lines[1], f"{page.name}: the line after the title does not link back: {lines[1]!r}"


# -- script commands --------------------------------------------------------------------------------------------

def _help_options(name: str) -> frozenset[str]:
    """The options ``scripts/NAME.py`` accepts, read from the option lines of its ``--help``."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{name}.py"), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, f"scripts/{name}.py --help failed:\n{done.stderr[-2000:]}"
    options = set()
    for line in done.stdout.splitlines():
        invocation = re.match(r"^  (-\S.*?)(?:\s{2,}|$)", line)
        if invocation:
            options.update(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", invocation.group(1)))
    assert "--help" in options and len(options) >= 2, f"no options read from scripts/{name}.py --help:\n{done.stdout}"
    return frozenset(options)


@functools.cache
def _all_script_options() -> dict[str, frozenset[str]]:
    """Every script's options, their `--help` run side by side (each is a fresh interpreter's imports)."""
    with ThreadPoolExecutor(max_workers=min(4, len(SCRIPTS))) as pool:
        return dict(zip(sorted(SCRIPTS), pool.map(_help_options, sorted(SCRIPTS))))


def _script_options(name: str) -> frozenset[str]:
    return _all_script_options()[name]


def _code_snippets(text: str) -> list[str]:
    """Shell commands in a page: each line of its shell code blocks (comments dropped) and each inline code
    span (whitespace, line breaks included, collapsed)."""
    snippets = []
    for match in FENCE.finditer(text):
        if match.group(1).lower() in SHELL_LANGS:
            for line in match.group(2).splitlines():
                snippets.append(re.sub(r"(^|\s)#.*", "", line))
    for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", _prose(text)):
        snippets.append(" ".join(span.split()))
    return snippets


def _commands(text: str) -> list[tuple[str, str, list[str]]]:
    """(the script mention as written, script name, the options it is given) for each script command."""
    out = []
    for snippet in _code_snippets(text):
        for match in SCRIPT.finditer(snippet):
            folder, name = match.group(1), match.group(2)
            if folder not in ("", "scripts/") or (not folder and name not in SCRIPTS):
                continue  # a module of the package (doom_a3c/benchmark.py, profiling.py), not a script
            rest = re.split(r"\s(?:&&|\|\||\||;|>|#)\s?|\s\S*\.py\b", snippet[match.end():] + " ")[0]
            options = [m.group(1) for tok in rest.split() if (m := OPTION.match(tok.split("=")[0]))]
            out.append((match.group(0), name, options))
    return out


def _bad_commands(page: Path) -> tuple[list[str], int, int]:
    problems, commands, options = [], 0, 0
    for written, name, given in _commands(_text(page)):
        commands += 1
        if name not in SCRIPTS:
            problems.append(f"{page.name}: `{written}`: there is no scripts/{name}.py")
            continue
        accepted = _script_options(name)
        for option in given:
            options += 1
            if option not in accepted:
                problems.append(f"{page.name}: `{written} ... {option}`: scripts/{name}.py has no {option} "
                                f"(it has {', '.join(sorted(accepted))})")
    return problems, commands, options


def test_every_script_command_in_the_readme_names_a_script_and_options_it_accepts():
    problems, commands, options = _bad_commands(README)
    assert not problems, "\n".join(problems)
    assert commands >= 20 and options >= 25, (commands, options)
    assert {name for _, name, _ in _commands(_text(README))} >= {"train_doom", "train", "play", "benchmark"}


def test_every_script_command_in_the_docs_pages_names_a_script_and_options_it_accepts():
    problems, commands, options = [], 0, 0
    for page in DOCS:
        bad, c, o = _bad_commands(page)
        problems, commands, options = problems + bad, commands + c, options + o
    assert not problems, "\n".join(problems)
    assert commands >= 20 and options >= 20, (commands, options)


def test_the_command_finder_finds_what_it_should():
    """The finder itself, on text whose answer is known (so that the tests above cannot pass by finding nothing)."""
    text = ("```bash\npython scripts/play.py --render --gif out.gif   # record --not-an-option\n"
            "pip install x && python scripts/train.py --env CartPole-v1 --lr=1e-3 | tee log\n```\n"
            "Run `xvfb-run -a python scripts/play.py\n--render` or `doom_a3c/benchmark.py --x` or `seeds.py [--json]`\n"
            "or `scripts/nope.py --y`.\n")
    assert _commands(text) == [("scripts/play.py", "play", ["--render", "--gif"]),
                               ("scripts/train.py", "train", ["--env", "--lr"]),
                               ("scripts/play.py", "play", ["--render"]),
                               ("seeds.py", "seeds", ["--json"]),
                               ("scripts/nope.py", "nope", ["--y"])]


# -- options tables ---------------------------------------------------------------------------------------------

def _table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first table after ``heading``."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
        elif rows:
            break
    assert len(rows) > 2, f"no table after {heading!r}"
    return rows[2:]  # past the header and its rule


def _options_in_cell(cell: str) -> list[tuple[str, str]]:
    """(option, the script it belongs to) for each option a table's first cell names."""
    found = []
    for m in re.finditer(r"`(--[\w-]+)(?: \[[A-Z]+\])?`(?: in `(\w+)\.py`)?", cell):
        found.append((m.group(1), m.group(2) or "train_doom"))
    return found


def _config_defaults() -> dict[str, object]:
    from doom_a3c.config import TrainConfig

    return {f"--{f.name.replace('_', '-')}": f.default for f in dataclasses.fields(TrainConfig)
            if f.default is not dataclasses.MISSING}


def _preset(name: str) -> dict | None:
    for path in (ROOT / "scenarios" / f"{name}.toml", ROOT / "scenarios" / "gym" / f"{name.replace('/', '-')}.toml"):
        if path.is_file():
            return tomllib.loads(path.read_text())
    return None


def _value(text: str):
    """A table's default as Python: on/off, a number (a trailing unit dropped), or the text itself."""
    text = text.strip().strip("`")
    if text in ("on", "off"):
        return text == "on"
    number = re.fullmatch(r"(-?[\d.]+(?:e-?\d+)?)(?: s)?", text)
    return float(number.group(1)) if number else text


def _same(said, actual) -> bool:
    if isinstance(said, bool) and isinstance(actual, str):
        return said == bool(actual)  # an option that takes a value: off is none (--ray)
    if isinstance(said, bool) or isinstance(actual, bool):
        return said == actual
    if isinstance(said, float):
        return isinstance(actual, (int, float)) and not (isinstance(actual, float) and math.isnan(actual)) \
            and math.isclose(said, float(actual))
    return said == actual


def _check_options_table(rows: list[list[str]]) -> tuple[list[str], int, int, int]:
    """Every option named exists in its script; every plain default equals TrainConfig's; every
    ``(preset: value)`` note equals that preset's [train] table. Returns problems and the counts checked."""
    defaults = _config_defaults()
    problems, named, checked_defaults, checked_notes = [], 0, 0, 0
    for cells in rows:
        options = _options_in_cell(cells[0])
        if not options:
            problems.append(f"a row names no option: {cells[0]!r}")
            continue
        for option, script in options:
            named += 1
            if option not in _script_options(script):
                problems.append(f"{option}: not an option of scripts/{script}.py")
        fields = [o for o, s in options if s == "train_doom" and o in defaults]
        default_cell = cells[1]
        notes = re.findall(r"\(([^()]*)\)", default_cell)
        plain = re.sub(r"\([^()]*\)", "", default_cell).strip()
        values = [v for v in plain.split(", ")] if plain else []
        if len(values) == len(fields):
            for option, text in zip(fields, values):
                said, actual = _value(text), defaults[option]
                if isinstance(said, str) and not (isinstance(actual, str) and actual):
                    continue  # "scenario's", "date and time": described, not a value
                checked_defaults += 1
                if not _same(said, actual):
                    problems.append(f"{option}: the table says the default is {text!r}, TrainConfig says {actual!r}")
        if len(fields) == 1:
            key = fields[0][2:].replace("-", "_")
            for note in notes:
                for preset, text in re.findall(r"([\w/.-]+): ([^;]+)", note):
                    spec = _preset(preset)
                    if spec is None:
                        continue
                    checked_notes += 1
                    actual = spec.get("train", {}).get(key, "(not set)")
                    if not _same(_value(text), actual):
                        problems.append(f"{fields[0]}: the table says {preset} sets {text.strip()!r}, its file "
                                        f"says {actual!r}")
    return problems, named, checked_defaults, checked_notes


def test_the_readme_main_options_exist_and_their_defaults_match_the_code_and_the_presets():
    rows = _table_after(_text(README), "## Main options")
    problems, named, defaults, notes = _check_options_table(rows)
    assert not problems, "\n".join(problems)
    assert len(rows) >= 15 and named >= 18 and defaults >= 10 and notes >= 4, (len(rows), named, defaults, notes)


def test_the_full_options_table_exists_and_its_defaults_match_the_code_and_the_presets():
    rows = _table_after(_text(ROOT / "docs" / "options.md"), "# Training options")
    problems, named, defaults, notes = _check_options_table(rows)
    assert not problems, "\n".join(problems)
    assert len(rows) >= 30 and named >= 40 and defaults >= 25 and notes >= 10, (len(rows), named, defaults, notes)


def test_the_options_checker_catches_a_stale_default():
    rows = [["`--envs-per-worker`", "8 (basic: 8)", "games"], ["`--gamma`", "0.99 (basic: 0.9)", "discount"],
            ["`--no-such-option`", "1", "?"]]
    problems, *_ = _check_options_table(rows)
    assert len(problems) == 3, problems  # the default 4, basic's 4, and an option train_doom.py does not have


# -- scenario tables and excerpts ---------------------------------------------------------------------------------

def _num_actions(spec: dict) -> int:
    if "actions" in spec:
        return len(spec["actions"])
    if "action_groups" in spec:
        return math.prod(len(group) + 1 for group in spec["action_groups"])
    return len(spec["buttons"])


def test_the_readme_scenario_table_matches_the_scenario_files():
    rows = _table_after(_text(README), "## Scenarios")
    files = {p.stem for p in (ROOT / "scenarios").glob("*.toml")}
    assert {r[0] for r in rows} == files
    for name, actions, target, mode, *_ in rows:
        spec = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text())
        assert int(actions) == _num_actions(spec), name
        assert math.isclose(float(target), spec["target_reward"]), name
        assert mode == spec.get("eval_mode", "greedy"), name


def _flatten(table: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_toml_excerpt_matches_the_file_it_names():
    """A TOML block that starts with `# excerpt of scenarios/NAME.toml` holds only that file's values."""
    excerpts = 0
    for page in PAGES:
        for match in FENCE.finditer(_text(page)):
            head = re.match(r"#\s*excerpt of\s+(scenarios/\S+\.toml)", match.group(2))
            if match.group(1) != "toml" or not head:
                continue
            excerpts += 1
            real = _flatten(tomllib.loads((ROOT / head.group(1)).read_text()))
            for key, value in _flatten(tomllib.loads(match.group(2))).items():
                assert key in real and real[key] == value, f"{page.name}: {head.group(1)}: {key} = {value!r}, " \
                                                            f"the file has {real.get(key, '(nothing)')!r}"
    assert excerpts >= 1


def test_the_readme_is_short():
    lines = _text(README).splitlines()
    assert 100 <= len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"


def test_every_doom_a3c_command_in_the_readme_exists_with_the_options_it_is_given():
    """The installed command's lines (`doom-a3c train --scenario basic`): the command is one of `doom-a3c`'s
    and each option is one that command's `--help` lists."""
    from doom_a3c.cli import COMMANDS

    found, problems, seen = 0, [], {}
    for snippet in _code_snippets(_text(README)):
        for match in re.finditer(r"\bdoom-a3c ([a-z][\w-]*)((?:\s+[^\s`#|;&]+)*)", snippet):
            command, rest = match.group(1), match.group(2)
            found += 1
            if command not in COMMANDS:
                problems.append(f"`doom-a3c {command}`: not a command ({', '.join(COMMANDS)})")
                continue
            if command not in seen:
                done = subprocess.run([sys.executable, "-m", "doom_a3c", command, "--help"], cwd=ROOT, timeout=HANG,
                                      capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
                assert done.returncode == 0, done.stderr[-2000:]
                seen[command] = set(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", done.stdout))
            problems += [f"`doom-a3c {command} {option}`: no such option" for option in re.findall(r"--[\w-]+", rest)
                         if option not in seen[command]]
    assert not problems, "\n".join(problems)
    assert found >= 3, found
