"""Where the project's data lives: the scenario files (``scenarios/``) and the shipped models
(``models/pretrained/``).

A checkout keeps them at its top level, beside the ``doom_a3c`` package; an installed copy (``pip install
.``) carries them as the package data ``doom_a3c.scenarios`` and ``doom_a3c.pretrained_models``, which
``pyproject.toml`` maps onto those same folders. Both are found here, the installed ones through
``importlib.resources``, so the rest of the code never asks where it runs from.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def _data_dir(package: str, checkout_folder: str) -> Path:
    """The folder of package data ``package``: installed (or installed editable), else the checkout's."""
    try:
        found = importlib.resources.files(package)
    except ModuleNotFoundError:  # a checkout on sys.path, not installed: the data is beside the package
        return CHECKOUT / checkout_folder
    return Path(str(found))


SCENARIOS_DIR = _data_dir("doom_a3c.scenarios", "scenarios")
PRETRAINED_DIR = _data_dir("doom_a3c.pretrained_models", "models/pretrained")
