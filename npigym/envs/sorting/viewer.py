"""Text and image rendering of the sorting array, its pointers and the call stack."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from npigym.envs.machine.library import ProgramLibrary
from npigym.envs.machine.types import State
from npigym.envs.machine.viewer import (
    ProgramViewer,
    figure_to_rgb,
    header_line,
    new_figure,
    stack_lines,
)
from npigym.envs.sorting import constants as c

POINTER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c")


class SortingViewer(ProgramViewer):
    """Renders the array with a marker row per pointer, and the call stack indented like a trace.

    Args:
        library: the env's program library (names the frames).
        max_columns: arrays longer than this are shown as a window around the pointers.
    """

    def __init__(self, library: ProgramLibrary, max_columns: int = 40):
        super().__init__(library)
        if max_columns < 1:
            raise ValueError(f"max_columns must be positive, not {max_columns!r}")
        self.max_columns = max_columns

    def _window(self, length: int, pointers: np.ndarray) -> Tuple[int, int]:
        if length <= self.max_columns:
            return 0, length
        # Pointers 1 and 2 are where the work happens; pointer 3 may be off screen.
        start = int(np.clip(pointers[: c.P3].min() - self.max_columns // 4, 0,
                            length - self.max_columns))
        return start, start + self.max_columns

    def render_text(self, state: State) -> str:
        cells = np.asarray(state.task.cells).astype(np.int64)
        pointers = np.asarray(state.task.pointers)
        length = int(state.task.length)
        values = cells[:length] - 1
        start, stop = self._window(length, pointers)
        width = max(len(str(int(values.max()))) if length else 1, 1) + 1
        sorted_now = bool(np.all(values[:-1] <= values[1:]))
        lines: List[str] = [f"{length} values, {'sorted' if sorted_now else 'unsorted'}    "
                            f"{header_line(state)}"]
        lines.extend(stack_lines(self.library, state))
        lines.append("")
        left = "…" if start > 0 else " "
        right = "…" if stop < length else ""
        lines.append(f"  {'array':<6}{left}" + "".join(f"{int(v):>{width}}"
                                                         for v in values[start:stop]) + right)
        for ptr, name in enumerate(c.POINTER_NAMES):
            col = int(pointers[ptr])
            if start <= col < stop:
                marker = " " * (width * (col - start)) + f"{'^':>{width}}"
            else:
                marker = ("<" if col < start else " " * (width * (stop - start)) + " >")
            lines.append(f"  {name:<6} {marker.rstrip()}    at {col}")
        return "\n".join(lines)

    def render_rgb(self, state: State) -> np.ndarray:
        cells = np.asarray(state.task.cells).astype(np.int64)
        pointers = np.asarray(state.task.pointers)
        length = int(state.task.length)
        values = cells[:length] - 1
        start, stop = self._window(length, pointers)
        ncols = stop - start
        top = max(int(values.max()) if length else 0, 1)
        frames = stack_lines(self.library, state, indent="   ")
        fig = new_figure(max(5.0, 0.42 * ncols + 1.0), 2.6 + 0.22 * (len(frames) + 1))
        grid_height = 2.2 / fig.get_figheight()
        ax = fig.add_axes((0.02, 0.03, 0.96, grid_height))
        # Bars above the row (height by value), the row of values, then one marker row per
        # pointer below it.
        bar_rows = 1.6
        ax.set_xlim(-0.1, ncols + 0.1)
        ax.set_ylim(1 + c.NUM_POINTERS * 0.45 + 0.1, -bar_rows)
        ax.axis("off")
        for j in range(ncols):
            v = int(values[start + j])
            h = bar_rows * 0.9 * (v / top if top else 0.0)
            ax.add_patch(_rect(j + 0.15, -h, 0.7, h, "#c7d7ea", "none", 0.0))
            ax.add_patch(_rect(j + 0.04, 0.04, 0.92, 0.92, "white", "#bbbbbb", 0.8))
            ax.text(j + 0.5, 0.5, str(v), ha="center", va="center", fontsize=12,
                    family="monospace")
        for ptr, name in enumerate(c.POINTER_NAMES):
            col = int(pointers[ptr]) - start
            y = 1 + 0.45 * ptr + 0.25
            if 0 <= col < ncols:
                ax.text(col + 0.5, y, f"▲{name}", ha="center", va="center", fontsize=8,
                        color=POINTER_COLOURS[ptr], weight="bold", family="monospace")
                if ptr < c.P3:
                    ax.add_patch(_rect(col + 0.04, 0.04, 0.92, 0.92, "none",
                                       POINTER_COLOURS[ptr], 2.5))
        text = "\n".join([header_line(state), *frames])
        fig.text(0.02, 0.97, text, ha="left", va="top", fontsize=9, family="monospace")
        return figure_to_rgb(fig)


def _rect(x: float, y: float, w: float, h: float, face: str, edge: str, lw: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=face, edgecolor=edge, linewidth=lw)
