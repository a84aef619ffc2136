"""Explained frames: where the agent looks, how sure it is, and what it expects to earn.

Each frame of an explained GIF shows the game at a watchable size with two perturbation saliency maps
blended over it (Greydanus et al. 2018, *Visualizing and Understanding Atari Agents*): blue where
blurring a small patch of the agent's input changes its policy, red where it changes its value
estimate. Beside it: the agent's own input scaled up, its action probabilities as labelled bars (the
chosen action highlighted), and a running plot of the value estimate and of the reward so far.

Saliency, as in the paper: for a Gaussian mask M centred at (i, j), the input with that patch blurred
is ``x * (1 - M) + blur(x) * M``; the policy's saliency there is half the squared distance between the
logits of the two inputs, the value's half the squared difference of the values. Centres lie on a grid
(every ``stride`` pixels); the grid of scores is interpolated back to the input's size. All perturbed
inputs go through the network in one batch, with the recurrent state the agent had at that step.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # (N, C, H, W) -> (logits, values)

GAME_HEIGHT = 360  # the game panel's height in pixels (160x120 frames are shown 3x)
SIDE_WIDTH = 300  # the right column: input, bars, plot
FONT = cv2.FONT_HERSHEY_SIMPLEX


# -- saliency ---------------------------------------------------------------------------------------------------
def gaussian_mask(shape: tuple[int, int], center: tuple[int, int], sigma: float) -> np.ndarray:
    """An (H, W) mask, 1 at ``center`` and falling off as a Gaussian of width ``sigma`` pixels."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return np.exp(-((rows - center[0]) ** 2 + (cols - center[1]) ** 2) / (2.0 * sigma**2))


def perturbation_saliency(forward: Forward, obs: np.ndarray, sigma: float | None = None,
                          stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Policy and value saliency of the (C, H, W) observation ``obs``, each an (H, W) float map.

    ``sigma`` (the mask's width) and ``stride`` (the grid's spacing) default to the paper's 5 and 5
    pixels on 84x84 frames, and the blur inside the mask to its 3, all scaled to this input's size."""
    channels, height, width = obs.shape
    scale = min(height, width) / 84.0
    sigma = sigma or max(1.0, 5.0 * scale)
    stride = stride or max(1, math.ceil(5.0 * scale))
    image = obs.astype(np.float32)
    blurred = np.stack([cv2.GaussianBlur(c, (0, 0), sigmaX=max(0.6 * sigma, 0.5)) for c in image])
    centres = [(i, j) for i in range(0, height, stride) for j in range(0, width, stride)]
    masks = np.stack([gaussian_mask((height, width), c, sigma) for c in centres]).astype(np.float32)[:, None]
    perturbed = image[None] * (1.0 - masks) + blurred[None] * masks
    batch = torch.from_numpy(np.concatenate([image[None], perturbed]))
    with torch.no_grad():
        logits, values = forward(batch)
    policy = 0.5 * ((logits[1:] - logits[:1]) ** 2).sum(dim=1).numpy()
    value = 0.5 * ((values[1:] - values[:1]) ** 2).numpy()
    grid = (len(range(0, height, stride)), len(range(0, width, stride)))
    return tuple(_upsample(scores.reshape(grid), stride, (height, width)) for scores in (policy, value))


def _upsample(scores: np.ndarray, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """Grid scores (one per centre, every ``stride`` pixels) -> an (H, W) map, centres at their pixels."""
    big = cv2.resize(scores.astype(np.float32), (scores.shape[1] * stride, scores.shape[0] * stride),
                     interpolation=cv2.INTER_LINEAR)
    shift = stride // 2  # INTER_LINEAR puts grid value k at pixel k*stride + stride/2; move it to k*stride
    big = np.pad(big, ((0, stride), (0, stride)), mode="edge")[shift:, shift:]
    return big[: shape[0], : shape[1]]


def model_forward(model, state, not_done: torch.Tensor) -> Forward:
    """The model's (logits, values) for a batch of inputs, all from the recurrent state ``state``."""

    def forward(batch: torch.Tensor):
        n = batch.shape[0]
        expanded = tuple(s.expand(n, -1) for s in state)
        params, values, _ = model(batch, expanded, not_done.expand(n))
        return params, values

    return forward


# -- drawing ------------------------------------------------------------------------------------------------------
def action_labels(spec, env, num_actions: int) -> list[str]:
    """A short name per action: the scenario's buttons (TURN_LEFT+ATTACK), Atari's meanings, or numbers."""
    if hasattr(spec, "buttons") and hasattr(spec, "actions"):
        names = ["+".join(b for b, pressed in zip(spec.buttons, a) if pressed) or "nothing" for a in spec.actions]
        return [n.replace("MOVE_", "").replace("TURN_", "TURN ") for n in names]
    meanings = getattr(getattr(env, "unwrapped", env), "get_action_meanings", None)
    if callable(meanings):
        return list(meanings())
    return [f"action {i}" for i in range(num_actions)]


def colour_input(spec) -> bool:
    """Whether the agent's input is one colour picture (channels R, G, B) rather than grey frames."""
    return getattr(spec, "grayscale", True) is False and tuple(spec.obs_shape)[:1] == (3,)


def saliency_on_frame(saliency: np.ndarray, frame_shape: tuple[int, int], crop: Sequence[int] | None) -> np.ndarray:
    """Place an input-sized map where that input came from in the frame: the crop box (top, bottom, left,
    right pixels removed) when the frame was cropped, the whole frame otherwise."""
    height, width = frame_shape
    top, bottom, left, right = crop or (0, 0, 0, 0)
    out = np.zeros((height, width), np.float32)
    box_w, box_h = width - left - right, height - top - bottom
    out[top : top + box_h, left : left + box_w] = cv2.resize(saliency, (box_w, box_h), interpolation=cv2.INTER_LINEAR)
    return out


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.42, colour=(235, 235, 235)) -> None:
    cv2.putText(image, text, origin, FONT, scale, colour, 1, cv2.LINE_AA)


class Explainer:
    """Turns each step of an episode into one explained frame (HxWx3 uint8); ``frame`` per step."""

    def __init__(self, labels: list[str], crop: Sequence[int] | None = None, reward_scale: float = 1.0,
                 colour: bool = False):
        """``crop``: what the scenario cuts off the frame before resizing it into the agent's input;
        ``reward_scale``: the factor training scaled rewards by (the value is plotted divided by it: in the
        game's units, where the scenario neither shapes nor clips its rewards); ``colour``: the input is
        one RGB picture (otherwise grey frames, of which the newest is shown)."""
        self.labels, self.crop, self.reward_scale, self.colour = labels, crop, reward_scale, colour
        self.values: list[float] = []
        self.rewards: list[float] = []
        self.peak = [1e-8, 1e-8]  # running maxima of the two maps: a frame where nothing matters stays dark
        self.seconds = 0.0  # spent drawing, so that an evaluation can leave it out of its own timing

    def frame(self, game: np.ndarray, obs: np.ndarray, forward: Forward, probs: np.ndarray, value: float,
              action: int, reward_so_far: float) -> np.ndarray:
        """The explained view of one step: ``game`` the frame shown, ``obs`` the agent's input, ``probs``
        its action probabilities, ``action`` the one taken, ``value`` its value estimate."""
        started = time.perf_counter()
        try:
            return self._frame(game, obs, forward, probs, value, action, reward_so_far)
        finally:
            self.seconds += time.perf_counter() - started

    def _frame(self, game, obs, forward, probs, value, action, reward_so_far) -> np.ndarray:
        policy_map, value_map = perturbation_saliency(forward, obs)
        self.values.append(value / self.reward_scale)
        self.rewards.append(reward_so_far)
        scale = GAME_HEIGHT / game.shape[0]
        size = (round(game.shape[1] * scale), GAME_HEIGHT)
        shown = cv2.resize(game, size, interpolation=cv2.INTER_NEAREST).astype(np.float32)
        for k, (saliency, channel) in enumerate(((policy_map, 2), (value_map, 0))):  # blue: policy, red: value
            self.peak[k] = max(self.peak[k] * 0.98, float(saliency.max()))
            placed = saliency_on_frame(saliency / self.peak[k], game.shape[:2], self.crop)
            shown[..., channel] += 220.0 * cv2.resize(np.clip(placed, 0, 1), size, interpolation=cv2.INTER_LINEAR)
        canvas = np.full((GAME_HEIGHT, size[0] + SIDE_WIDTH, 3), 24, np.uint8)
        canvas[:, : size[0]] = np.clip(shown, 0, 255).astype(np.uint8)
        _text(canvas, "policy saliency", (8, 18), colour=(120, 150, 255))
        _text(canvas, "value saliency", (8, 36), colour=(255, 110, 110))
        x = size[0] + 10
        y = self._draw_input(canvas, obs, x)
        y = self._draw_bars(canvas, probs, action, x, y + 8)
        self._draw_plot(canvas, x, y + 8, SIDE_WIDTH - 20, GAME_HEIGHT - y - 16)
        return canvas

    def _draw_input(self, canvas: np.ndarray, obs: np.ndarray, x: int) -> int:
        picture = obs.transpose(1, 2, 0) if self.colour else obs[-1]  # colour, or the newest grey frame
        picture = np.repeat(picture[..., None], 3, axis=2) if picture.ndim == 2 else picture
        zoom = max(1, min((SIDE_WIDTH - 20) // picture.shape[1], 130 // picture.shape[0]))
        big = cv2.resize(picture, (picture.shape[1] * zoom, picture.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
        _text(canvas, f"agent's input {obs.shape[2]}x{obs.shape[1]}", (x, 16))
        canvas[22 : 22 + big.shape[0], x : x + big.shape[1]] = big
        return 22 + big.shape[0]

    def _draw_bars(self, canvas: np.ndarray, probs: np.ndarray, action: int, x: int, y: int) -> int:
        width = SIDE_WIDTH - 20
        row = max(12, min(18, (GAME_HEIGHT - y - 90) // max(1, len(probs))))
        for i, (label, p) in enumerate(zip(self.labels, probs)):
            top = y + i * row
            colour = (90, 200, 90) if i == action else (110, 110, 110)
            cv2.rectangle(canvas, (x, top + 2), (x + int(round(p * width)), top + row - 2), colour, -1)
            _text(canvas, f"{label} {p:.2f}", (x + 3, top + row - 4), scale=0.36)
        return y + len(probs) * row

    def _draw_plot(self, canvas: np.ndarray, x: int, y: int, width: int, height: int) -> None:
        if height < 30:
            return
        cv2.rectangle(canvas, (x, y), (x + width, y + height), (70, 70, 70), 1)
        series = [(self.values, (240, 200, 60), "value"), (self.rewards, (90, 220, 90), "reward so far")]
        low = min(min(self.values), min(self.rewards), 0.0)
        high = max(max(self.values), max(self.rewards), low + 1e-6)
        steps = max(len(self.values) - 1, 1)
        for k, (points, colour, name) in enumerate(series):
            xs = x + 2 + np.arange(len(points)) * (width - 4) / steps
            ys = y + height - 2 - (np.array(points) - low) / (high - low) * (height - 14)
            cv2.polylines(canvas, [np.stack([xs, ys], 1).astype(np.int32).reshape(-1, 1, 2)], False, colour, 1,
                          cv2.LINE_AA)
            _text(canvas, f"{name} {points[-1]:.1f}", (x + 4 + k * (width // 2), y + 12), scale=0.36, colour=colour)
