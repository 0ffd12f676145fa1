"""Rendering of KthLargest-v0: Sorting's array and stack, with k and the target cell."""

from __future__ import annotations

import numpy as np

from npigym.envs.machine.types import State
from npigym.envs.machine.viewer import figure_to_rgb, new_figure
from npigym.envs.sorting.viewer import SortingViewer


def target_line(state: State) -> str:
    """``k = 2: target cell 3 (length - k), the 2nd largest value is 7`` for ``state``."""
    cells = np.asarray(state.task.cells).astype(np.int64)
    length, k = int(state.task.length), int(state.task.k)
    values = np.sort(cells[:length] - 1)
    kth = int(values[length - k]) if 1 <= k <= length else None
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(k % 10 if k % 100 not in (11, 12, 13) else 0, "th")
    return (f"k = {k}: target cell {length - k} (length - k), "
            f"the {k}{suffix} largest value is {kth}")


class KthLargestViewer(SortingViewer):
    """:class:`SortingViewer` with a line naming k, the target cell and the k-th largest value.

    Args:
        library: the env's program library (names the frames).
        max_columns: arrays longer than this are shown as a window around the pointers.
    """

    def render_text(self, state: State) -> str:
        first, _, rest = super().render_text(state).partition("\n")
        return "\n".join([first, target_line(state), rest])

    def render_rgb(self, state: State) -> np.ndarray:
        image = super().render_rgb(state)
        fig = new_figure(image.shape[1] / 100, 0.3)
        fig.text(0.02, 0.5, target_line(state), ha="left", va="center", fontsize=9,
                 family="monospace")
        banner = figure_to_rgb(fig)[:, : image.shape[1]]
        if banner.shape[1] < image.shape[1]:  # rounding of the figure's size
            pad = np.full((banner.shape[0], image.shape[1] - banner.shape[1], 3), 255, np.uint8)
            banner = np.concatenate([banner, pad], axis=1)
        return np.concatenate([banner, image], axis=0)
