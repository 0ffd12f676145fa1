"""State and observation of the Discounting Chain."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import chex

if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import dataclass
else:
    from chex import dataclass


@dataclass
class State:
    """Attributes:
        context: () int32, the context chosen by the episode's first action (-1 before it).
        step_count: () int32, steps taken in the episode (0 to 100).
        key: the PRNG key (the env is deterministic; kept for auto-reset wrappers).
    """

    context: chex.Array
    step_count: chex.Array
    key: chex.PRNGKey


class Observation(NamedTuple):
    """Attributes:
        context: () int32 in [-1, 4], -1 before the first action (bsuite's first feature).
        time: () float32, ``step_count / 100`` (bsuite's second feature).
    """

    context: chex.Array
    time: chex.Array
