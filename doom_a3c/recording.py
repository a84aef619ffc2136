"""GIF writing with imageio."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np


def write_gif(path: str | Path, frames: Sequence[np.ndarray], fps: float = 35 / 4) -> Path:
    """Write HxWx3 uint8 frames as a looping GIF at ``fps`` frames per second."""
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # Pillow takes the frame duration in milliseconds; loop=0 loops forever.
    iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    tmp.replace(path)
    return path
