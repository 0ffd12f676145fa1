"""Text and image rendering of the dot-product state: the vectors, then the current pair's
multiplication as Multiplication's viewer draws it."""

from __future__ import annotations

import numpy as np

from npigym.envs.addition.viewer import row_number
from npigym.envs.dot_product import task
from npigym.envs.machine.types import State
from npigym.envs.machine.viewer import header_line, stack_lines
from npigym.envs.multiplication.viewer import MultiplicationViewer


class DotProductViewer(MultiplicationViewer):
    """Renders ``x . y`` with the current pair marked, the call stack, and the pair's pad."""

    def title(self, state: State) -> str:
        d = state.task
        k, i = int(d.num_pairs), int(d.pair)
        x = [row_number(np.asarray(d.x[j])) for j in range(k)]
        y = [row_number(np.asarray(d.y[j])) for j in range(k)]
        terms = " + ".join(f"{'>' if j == i else ''}{x[j]}*{y[j]}" for j in range(k))
        answer = sum(int(a) * int(b) for a, b in zip(x, y)) if sum(map(len, x + y)) < 200 \
            else "..."
        acc = row_number(np.asarray(d.work[0])) or "0"
        return f"{terms} = {answer}    ACC: {acc}    {header_line(state)}"

    def render_text(self, state: State) -> str:
        view = state.replace(task=task.multiplication_view(state.task))
        return "\n".join([self.title(state), *stack_lines(self.library, state),
                          f"pair {int(state.task.pair) + 1} of {int(state.task.num_pairs)}, "
                          f"additions at this digit: {int(state.task.reps)}", "",
                          *self.lines(view)])
