"""Text and image rendering of the multiplication scratchpad and call stack."""

from __future__ import annotations

from typing import List

import numpy as np

from npigym.envs.addition.viewer import cell_text, row_number
from npigym.envs.machine.types import State
from npigym.envs.machine.viewer import (
    ProgramViewer,
    figure_to_rgb,
    header_line,
    new_figure,
    stack_lines,
)
from npigym.envs.multiplication import constants as c


class MultiplicationViewer(ProgramViewer):
    """Renders the pad with the pointers' cells in brackets, the shifted multiplicand that ADD
    sees (``A*10^j``), and the call stack indented like a trace."""

    def title(self, state: State) -> str:
        pad = np.asarray(state.task.pad)
        a, b, acc = row_number(pad[c.A]), row_number(pad[c.B]), row_number(pad[c.ACC])
        if len(a) + len(b) <= 60:
            return (f"{a} x {b} = {int(a or 0) * int(b or 0)}    ACC: {acc or '0'}    "
                    f"{header_line(state)}")
        return f"{len(a)} x {len(b)}-digit multiplication    {header_line(state)}"

    def lines(self, state: State) -> List[str]:
        m = state.task
        pad = np.asarray(m.pad)
        width = pad.shape[1]
        add_ptr = np.asarray(m.add_pointers)
        b_ptr = int(m.b_pointer)
        j = width - 2 - b_ptr
        shifted = np.full(width, c.BLANK)
        shifted[0] = shifted[-1] = c.SENTINEL
        for col in range(1, width - 1):
            src = col + j
            shifted[col] = pad[c.A, src] if src <= width - 2 else c.ZERO
        rows = [("A", pad[c.A], None), ("B", pad[c.B], b_ptr),
                (f"A*10^{j}", shifted, add_ptr[1]), ("ACC", pad[c.ACC], add_ptr[0]),
                ("CARRY", pad[c.CARRY], add_ptr[2]), ("OUT", pad[c.OUT], add_ptr[3])]
        out = []
        for name, row, pointer in rows:
            cells = "".join(f"[{cell_text(int(v))}]" if col == pointer else f" {cell_text(int(v))} "
                            for col, v in enumerate(row))
            out.append(f"  {name:<8}{cells}")
        return out

    def render_text(self, state: State) -> str:
        reps = f"additions at this digit: {int(state.task.reps)}"
        return "\n".join([self.title(state), *stack_lines(self.library, state), reps, "",
                          *self.lines(state)])

    def render_rgb(self, state: State) -> np.ndarray:
        text = self.render_text(state)
        lines = text.splitlines()
        width = max(len(line) for line in lines)
        fig = new_figure(max(4.0, 0.095 * width + 0.4), 0.2 * len(lines) + 0.4)
        fig.text(0.02, 0.98, text, ha="left", va="top", fontsize=9, family="monospace")
        return figure_to_rgb(fig)
