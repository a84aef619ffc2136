"""Where the project's data lives: the scenario files (``scenarios/``) and the shipped models
(``models/pretrained/``).

A checkout keeps them at its top level, beside the ``doom_a3c`` package (an editable install too); an
installed copy (``pip install .``) carries them inside the package, as ``doom_a3c/scenarios/`` and
``doom_a3c/pretrained_models/`` (``pyproject.toml`` maps the checkout's folders onto them). Which one this
is, is read from the folders beside this file, so the rest of the code never asks where it runs from.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
IN_CHECKOUT = not (PACKAGE / "scenarios").is_dir()  # an installed copy carries its scenarios inside the package
CHECKOUT = PACKAGE.parent if IN_CHECKOUT else None

SCENARIOS_DIR = PACKAGE.parent / "scenarios" if IN_CHECKOUT else PACKAGE / "scenarios"
PRETRAINED_DIR = PACKAGE.parent / "models" / "pretrained" if IN_CHECKOUT else PACKAGE / "pretrained_models"
