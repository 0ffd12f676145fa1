"""Text and image rendering of the canonicalization task: the view, the poses, the call stack."""

from __future__ import annotations

from typing import List, Tuple

import jax
import numpy as np

from npigym.envs.canonicalize import constants as c
from npigym.envs.canonicalize import shapes
from npigym.envs.canonicalize.render import render_view
from npigym.envs.machine.library import ProgramLibrary
from npigym.envs.machine.types import State
from npigym.envs.machine.viewer import (
    ProgramViewer,
    figure_to_rgb,
    header_line,
    new_figure,
    stack_lines,
)

# Dark to bright, for the text thumbnail.
ASCII_RAMP = " .:-=+*#%@"


def azimuth_degrees(index: int) -> int:
    """An azimuth index as degrees in [-180, 180)."""
    degrees = int(index) * c.DEGREES_PER_STEP
    return degrees - 360 if degrees >= 180 else degrees


def pose_text(azimuth: int, elevation: int) -> str:
    return f"az {azimuth_degrees(azimuth):+d}° el {int(elevation) * c.DEGREES_PER_STEP:+d}°"


def ascii_image(image: np.ndarray, max_columns: int = 32) -> List[str]:
    """A grayscale image in [0, 1] as text, one character per pixel column and two pixel rows
    (terminal cells are about twice as tall as wide), shrunk to ``max_columns``."""
    image = np.asarray(image, np.float32)
    step = max(1, -(-image.shape[1] // max_columns))
    height = image.shape[0] // (2 * step) * (2 * step)
    width = image.shape[1] // step * step
    cells = image[:height, :width].reshape(height // (2 * step), 2 * step, width // step, step)
    levels = np.clip(cells.mean(axis=(1, 3)) * len(ASCII_RAMP), 0, len(ASCII_RAMP) - 1)
    return ["".join(ASCII_RAMP[int(v)] for v in row) for row in levels]


class CanonicalizeViewer(ProgramViewer):
    """Renders the current view (the observed image), the pose and target, and the call stack.

    Args:
        library: the env's program library (names the frames).
        image_shape: (height, width) of the env's images.
        elevation_range: (low, high) degrees, the camera's bounds (drawn on the pose grid).
        thumbnail_columns: width of the text thumbnail (0 leaves it out).
    """

    def __init__(self, library: ProgramLibrary, image_shape: Tuple[int, int],
                 elevation_range: Tuple[int, int] = c.DEFAULT_ELEVATION_RANGE,
                 thumbnail_columns: int = 32):
        super().__init__(library)
        self.image_shape = tuple(int(n) for n in image_shape)
        self.elevation_range = tuple(elevation_range)
        self.thumbnail_columns = thumbnail_columns
        height, width = self.image_shape
        self._render = jax.jit(lambda code, az, el: render_view(code, az, el, height, width))

    def image(self, state: State) -> np.ndarray:
        """The (H, W) image the agent sees in ``state``."""
        scene = state.task
        return np.asarray(self._render(scene.shape, scene.azimuth, scene.elevation))

    def _summary(self, state: State) -> List[str]:
        scene = state.task
        pose = pose_text(int(scene.azimuth), int(scene.elevation))
        target = pose_text(int(scene.target_azimuth), int(scene.target_elevation))
        moves = np.asarray(scene.moves)
        moved = " ".join(f"{n[0]}{int(k)}" for n, k in zip(c.DIRECTION_NAMES, moves))
        return [f"pose {pose}  ->  target {target}    {header_line(state)}",
                f"model {shapes.describe(int(scene.shape))}    moves {moved}"]

    def render_text(self, state: State) -> str:
        lines = self._summary(state)
        lines.extend(stack_lines(self.library, state))
        if self.thumbnail_columns:
            lines.append("")
            lines.extend("  |" + row + "|" for row in ascii_image(self.image(state),
                                                                  self.thumbnail_columns))
        return "\n".join(lines)

    def render_rgb(self, state: State) -> np.ndarray:
        scene = state.task
        frames = stack_lines(self.library, state, indent="   ")
        fig = new_figure(8.0, 4.2)
        ax = fig.add_axes((0.02, 0.05, 0.42, 0.80))
        ax.imshow(self.image(state), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"view: {pose_text(int(scene.azimuth), int(scene.elevation))}",
                     fontsize=10, family="monospace")
        self._pose_grid(fig.add_axes((0.52, 0.13, 0.45, 0.33)), scene)
        pose = pose_text(int(scene.azimuth), int(scene.elevation))
        target = pose_text(int(scene.target_azimuth), int(scene.target_elevation))
        style, params = shapes.describe(int(scene.shape)).split(" ", 1)
        text = "\n".join([f"camera {pose}", f"target {target}", header_line(state),
                          f"model: {style}", *_wrap(params, 52), "", *frames])
        fig.text(0.52, 0.95, text, ha="left", va="top", fontsize=8.5, family="monospace")
        return figure_to_rgb(fig)

    def _pose_grid(self, ax, scene) -> None:
        """All poses: azimuth across (-180..165), elevation up; the camera's bounds shaded,
        the current pose a filled square, the target a ring."""
        def x_of(index: int) -> int:
            return azimuth_degrees(index) // c.DEGREES_PER_STEP

        lo, hi = (e // c.DEGREES_PER_STEP for e in self.elevation_range)
        ax.axhspan(lo - 0.5, hi + 0.5, color="#e8eef8", zorder=0)
        ax.plot([x_of(int(scene.target_azimuth))], [int(scene.target_elevation)], "o",
                markersize=11, markerfacecolor="none", markeredgecolor="#d62728", mew=2)
        ax.plot([x_of(int(scene.azimuth))], [int(scene.elevation)], "s", markersize=7,
                color="#1f77b4")
        ax.set_xlim(-12.5, 11.5)
        ax.set_ylim(c.MIN_ELEVATION_LEVEL - 0.5, c.MAX_ELEVATION_LEVEL + 0.5)
        ax.set_xticks(range(-12, 12, 3))
        ax.set_xticklabels([f"{15 * k}" for k in range(-12, 12, 3)], fontsize=7)
        ax.set_yticks(range(c.MIN_ELEVATION_LEVEL, c.MAX_ELEVATION_LEVEL + 1, 2))
        ax.set_yticklabels([f"{15 * k}" for k in range(c.MIN_ELEVATION_LEVEL,
                                                       c.MAX_ELEVATION_LEVEL + 1, 2)], fontsize=7)
        ax.set_xlabel("azimuth (°)   ■ camera  ○ target", fontsize=8)
        ax.set_ylabel("elevation (°)", fontsize=8)
        ax.grid(True, linewidth=0.3)


def _wrap(text: str, width: int) -> List[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]
