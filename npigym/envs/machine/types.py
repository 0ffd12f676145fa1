"""Types of the program machine: call stack, machine state, observation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, NamedTuple

import chex

if TYPE_CHECKING:  # pragma: no cover - mypy sees plain dataclasses, as in Jumanji.
    from dataclasses import dataclass
else:
    from chex import dataclass


@dataclass
class CallStack:
    """A fixed-depth call stack; frame 0 is the task's root program.

    Attributes:
        program: (max_depth,) int32, program id of each frame.
        args: (max_depth, 3) int32, the arguments each frame was called with.
        steps: (max_depth,) int32, calls each frame has made so far (its position in its own
            execution trace; the experts read it the way NPI's teachers read their plan).
        snapshot: the task's snapshot of its state when each frame was called, with a leading
            (max_depth,) axis; postconditions compare it with the state at RETURN.
        depth: () int32, index of the top frame.
    """

    program: chex.Array
    args: chex.Array
    steps: chex.Array
    snapshot: Any
    depth: chex.Array


class Frame(NamedTuple):
    """The top frame of a call stack, as the task's expert and postconditions see it."""

    program: chex.Array  # () int32
    args: chex.Array  # (3,) int32
    steps: chex.Array  # () int32
    snapshot: Any  # the task's snapshot at call time


@dataclass
class State:
    """State of a program-machine environment.

    Attributes:
        task: the task's own state (scratchpad, pointers, instance data).
        stack: the call stack.
        step_count: () int32, agent steps taken this episode.
        step_limit: () int32, the episode is truncated when ``step_count`` reaches it.
        key: random key for the next reset (used by auto-reset wrappers).
    """

    task: Any
    stack: CallStack
    step_count: chex.Array
    step_limit: chex.Array
    key: chex.PRNGKey


class _ObservationFields(NamedTuple):
    """What the agent sees, NPI style.

    Attributes:
        program: () int32, the program being executed (the top frame).
        args: (3,) int32, its arguments.
        depth: () int32, its position on the call stack (0 for the task's root program).
        action_mask: (num_programs,) bool, the programs it may call now (RETURN always).
        local: the task's local view (NPI's encoder input: values under the pointers, edge
            flags, ...); its layout is the env's ``observation_spec.local``.
        full: the task's full state (whole scratchpad, pointer positions) when the env was made
            with ``observation="full"``, else ``None``.
    """

    program: chex.Array
    args: chex.Array
    depth: chex.Array
    action_mask: chex.Array
    local: Any
    full: Any = None


class Observation(_ObservationFields):
    """What the agent sees, NPI style: ``program``, ``args``, ``depth``, ``action_mask``,
    ``local`` and, with ``observation="full"``, ``full`` (replaced at run time by the fields'
    full description)."""

    __doc__ = _ObservationFields.__doc__
    __slots__ = ()

    def _asdict(self) -> Dict[str, Any]:
        """The fields that are present: ``full`` is left out when it is None, so converters
        that walk ``_asdict`` (``jumanji.wrappers.JumanjiToGymWrapper``, ...) see no None."""
        return {k: v for k, v in zip(self._fields, self) if v is not None}
