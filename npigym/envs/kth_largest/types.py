"""Types of KthLargest-v0's state: Sorting's pad with ``k``."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import chex

from npigym.envs.sorting.types import SortPad

if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import dataclass
else:
    from chex import dataclass


@dataclass
class KthPad(SortPad):
    """A :class:`~npigym.envs.sorting.types.SortPad` (cells, pointers, length, fingerprint,
    inversions_removed, as in Sorting) and the rank asked for.

    Being a ``SortPad``, Sorting's task functions (primitives, expert, postconditions,
    snapshot) apply to it unchanged; ``pad.replace`` keeps ``k``.

    Attributes:
        k: () int32, which largest value the pointers must end on, in ``[1, length]``; the
            target cell of a sorted array is ``length - k``.
    """

    k: chex.Array


class FullView(NamedTuple):
    """The whole array and ``k`` (``observation="full"``)."""

    cells: chex.Array  # (max_length,) cells, 0 blank, v + 1 for value v
    length: chex.Array  # () int32
    pointers: chex.Array  # (3,) int32
    k: chex.Array  # () int32
