"""Text and image rendering of the addition scratchpad and call stack."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from npigym.envs.addition import constants as c
from npigym.envs.machine.library import ProgramLibrary
from npigym.envs.machine.types import State
from npigym.envs.machine.viewer import (
    ProgramViewer,
    figure_to_rgb,
    header_line,
    new_figure,
    stack_lines,
)

ROW_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd")


def cell_text(value: int) -> str:
    if value == c.BLANK:
        return "."
    if value == c.SENTINEL:
        return "#"
    return str(value - 1)


def row_number(row: np.ndarray) -> str:
    """The digits of a pad row as a number ("" when blank)."""
    digits = "".join(str(v - 1) for v in row if c.BLANK < v < c.SENTINEL)
    return digits.lstrip("0") or ("0" if digits else "")


class AdditionViewer(ProgramViewer):
    """Renders the pad (pointer cells in brackets) and the call stack indented like a trace.

    Args:
        library: the env's program library (names the frames).
        max_columns: pads wider than this are shown as a window around the pointers.
    """

    def __init__(self, library: ProgramLibrary, max_columns: int = 40):
        super().__init__(library)
        self.max_columns = max_columns

    def _window(self, pad: np.ndarray, pointers: np.ndarray) -> Tuple[int, int]:
        width = pad.shape[1]
        if width <= self.max_columns:
            return 0, width
        start = int(np.clip(pointers.min() - self.max_columns // 4, 0, width - self.max_columns))
        return start, start + self.max_columns

    def title(self, state: State) -> str:
        """``96 + 125 = 221    OUT: 21    step 9/114`` (sizes only for long numbers)."""
        pad = np.asarray(state.task.pad)
        a, b = row_number(pad[c.IN1]), row_number(pad[c.IN2])
        if max(len(a), len(b)) <= 60:  # Python ints refuse > 4,300-digit strings anyway
            answer = int(a or 0) + int(b or 0)
            return (f"{a} + {b} = {answer}    OUT: {row_number(pad[c.OUT]) or '-'}    "
                    f"{header_line(state)}")
        return f"{int(state.task.num_digits)}-digit addition    {header_line(state)}"

    def render_text(self, state: State) -> str:
        pad = np.asarray(state.task.pad)
        pointers = np.asarray(state.task.pointers)
        start, stop = self._window(pad, pointers)
        lines: List[str] = [self.title(state)]
        lines.extend(stack_lines(self.library, state))
        lines.append("")
        for r, name in enumerate(c.ROW_NAMES):
            cells = []
            for col in range(start, stop):
                text = cell_text(int(pad[r, col]))
                cells.append(f"[{text}]" if col == pointers[r] else f" {text} ")
            left = "…" if start > 0 else " "
            right = "…" if stop < pad.shape[1] else ""
            lines.append(f"  {name:<6}{left}{''.join(cells)}{right}")
        return "\n".join(lines)

    def render_rgb(self, state: State) -> np.ndarray:
        pad = np.asarray(state.task.pad)
        pointers = np.asarray(state.task.pointers)
        start, stop = self._window(pad, pointers)
        ncols = stop - start
        frames = stack_lines(self.library, state, indent="   ")
        fig = new_figure(max(5.0, 0.42 * ncols + 1.6), 2.0 + 0.22 * (len(frames) + 1))
        grid_height = 1.6 / fig.get_figheight()
        ax = fig.add_axes((0.02, 0.04, 0.96, grid_height))
        ax.set_xlim(-1.6, ncols)
        ax.set_ylim(c.NUM_ROWS, 0)
        ax.axis("off")
        for r, name in enumerate(c.ROW_NAMES):
            ax.text(-0.2, r + 0.5, name, ha="right", va="center", fontsize=10,
                    color=ROW_COLOURS[r], family="monospace", weight="bold")
            for j in range(ncols):
                value = int(pad[r, start + j])
                face = "#dddddd" if value == c.SENTINEL else "white"
                ax.add_patch(_rect(j, r, face, "#bbbbbb", 0.8))
                if value not in (c.BLANK, c.SENTINEL):
                    ax.text(j + 0.5, r + 0.5, cell_text(value), ha="center", va="center",
                            fontsize=13, family="monospace")
            p = int(pointers[r]) - start
            if 0 <= p < ncols:
                ax.add_patch(_rect(p, r, "none", ROW_COLOURS[r], 2.5))
        text = "\n".join([self.title(state), *frames])
        fig.text(0.02, 0.97, text, ha="left", va="top", fontsize=9, family="monospace")
        return figure_to_rgb(fig)


def _rect(x: float, y: float, face: str, edge: str, lw: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, facecolor=face, edgecolor=edge,
                     linewidth=lw)
