"""Rendering shared by every task: the call stack as an NPI trace, figures to RGB, GIFs."""

from __future__ import annotations

import abc
from typing import List, Optional, Sequence

import numpy as np

from npigym.envs.machine.library import ProgramLibrary
from npigym.envs.machine.types import State


class ProgramViewer(abc.ABC):
    """Renders a task's states; envs take one as ``viewer=`` (Jumanji style) to restyle them.

    Subclasses draw the task; the call stack and animation are shared.
    """

    def __init__(self, library: ProgramLibrary):
        self.library = library

    @abc.abstractmethod
    def render_text(self, state: State) -> str:
        """The state as text: the task and the call stack."""

    @abc.abstractmethod
    def render_rgb(self, state: State) -> np.ndarray:
        """The state as an (H, W, 3) uint8 image."""

    def animate(self, states: Sequence[State], save_path: Optional[str] = None,
                interval: int = 200):
        return animate_frames([self.render_rgb(s) for s in states], save_path, interval)


def stack_lines(library: ProgramLibrary, state: State, indent: str = "  ") -> List[str]:
    """The active frames, outermost first, indented by depth like an NPI trace."""
    stack = state.stack
    depth = int(stack.depth)
    programs = np.asarray(stack.program)
    args = np.asarray(stack.args)
    steps = np.asarray(stack.steps)
    lines = []
    for d in range(depth + 1):
        call = library.format_call(programs[d], args[d])
        marker = "  <- acting" if d == depth else ""
        lines.append(f"{indent * d}{call}  [{steps[d]} calls]{marker}")
    return lines


def header_line(state: State) -> str:
    return f"step {int(state.step_count)}/{int(state.step_limit)}"


def figure_to_rgb(fig) -> np.ndarray:
    """Draw a matplotlib figure (Agg canvas) and return it as an (H, W, 3) uint8 array."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.array(rgba[..., :3])


def new_figure(width: float, height: float):
    """A figure on a private Agg canvas: no pyplot state, safe in threads and without a screen."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def animate_frames(frames: Sequence[np.ndarray], save_path: Optional[str] = None,
                   interval: int = 200):
    """A matplotlib animation of RGB frames, saved to ``save_path`` when given (GIF via Pillow).

    Frames of different sizes are padded to the largest with white.
    """
    import matplotlib.animation as animation

    if len(frames) == 0:
        raise ValueError("animate needs at least one state")
    height = max(f.shape[0] for f in frames)
    width = max(f.shape[1] for f in frames)
    padded = []
    for f in frames:
        canvas = np.full((height, width, 3), 255, np.uint8)
        canvas[: f.shape[0], : f.shape[1]] = f
        padded.append(canvas)
    fig = new_figure(width / 100, height / 100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    image = ax.imshow(padded[0])

    def update(i):
        image.set_data(padded[i])
        return (image,)

    anim = animation.FuncAnimation(fig, update, frames=len(padded), interval=interval, blit=True)
    if save_path is not None:
        anim.save(save_path, writer=animation.PillowWriter(fps=max(1, round(1000 / interval))))
    return anim
