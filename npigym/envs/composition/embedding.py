"""One task's programs inside another's library, through a view of the host's state.

A composition task (Multiplication over Addition, DotProduct over Multiplication) has in its
library the programs of the task it builds on, under the same names, and shows that task its
own state through a *view*: ``project(host_task) -> sub_task`` and ``embed(host_task, sub_task)
-> host_task`` (Multiplication shows its accumulator, the shifted multiplicand, its carry and
output rows as an Addition scratchpad). :class:`Embedding` lifts the sub-task's four functions
through the view, so the embedded programs work in every mode with nothing written twice:

- ``agent`` / ``flat``: the agent calls the sub-task's primitives, which act on the view;
- ``builtin``: the machine's builtin loop runs the sub-task's expert on the view;
- ``skill``: the machine runs a trained policy on the projected state
  (``ProgramEnv.skill_view`` returns the same view).

Program ids are translated by name between the two libraries, so the host may order its
library as it likes. Views are functions of the host's state alone (not of the call's
arguments): the same view serves a frame's whole subtree.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

import chex
import jax.numpy as jnp
import numpy as np

from npigym.envs.machine.library import ProgramLibrary
from npigym.envs.machine.types import Frame

Project = Callable[[Any], Any]
Embed = Callable[[Any, Any], Any]


class Embedding:
    """A sub-task's programs lifted into a host library through ``(project, embed)``.

    Args:
        env: an environment of the sub-task (its four functions and library are used; its
            size knobs and posing do not matter).
        host: the host's program library; it must hold every program of ``env``'s library
            under the same name.
        project: the host's task state -> the sub-task's.
        embed: (host state, sub-task state) -> the host's state after the sub-task's change.

    Attributes:
        member: (host programs,) bool, which host programs belong to the sub-task.
        to_sub: (host programs,) int32, each host id's id in the sub library (0 elsewhere).
        to_host: (sub programs,) int32, each sub id's id in the host library.
    """

    def __init__(self, env: Any, host: ProgramLibrary, project: Project, embed: Embed):
        sub: ProgramLibrary = env.library
        missing = [n for n in sub.names[1:] if n not in host]
        if missing:
            raise ValueError(f"the host library lacks {missing} of {type(env).__name__}'s "
                             "programs; an embedded task keeps its programs' names")
        self.env, self.project, self.embed = env, project, embed
        to_host = np.asarray([host.id(n) for n in sub.names], np.int32)
        to_sub = np.zeros((host.num_programs,), np.int32)
        to_sub[to_host] = np.arange(sub.num_programs)
        member = np.zeros((host.num_programs,), bool)
        member[to_host[1:]] = True
        self.member, self.to_sub, self.to_host = member, to_sub, to_host
        self._member, self._to_sub, self._to_host = (jnp.asarray(member), jnp.asarray(to_sub),
                                                     jnp.asarray(to_host))

    def is_member(self, program: chex.Array) -> chex.Array:
        """() bool: ``program`` (a host id) is one of the sub-task's programs (not RETURN)."""
        return self._member[program]

    def apply_primitive(self, task: Any, program: chex.Array, args: chex.Array
                        ) -> Tuple[Any, chex.Array]:
        """The sub-task's primitive applied to the view; valid only for its own primitives."""
        sub, ok = self.env.apply_primitive(self.project(task), self._to_sub[program], args)
        return self.embed(task, sub), ok & self._member[program]

    def expert_call(self, task: Any, frame: Frame) -> chex.Array:
        """The sub-task's expert for a frame of one of its programs, as a host call.

        ``frame.snapshot`` must be the sub-task's snapshot (:meth:`snapshot`)."""
        call = self.env.expert_call(self.project(task), self._sub_frame(frame))
        return call.at[0].set(self._to_host[call[0]])

    def postcondition(self, task: Any, frame: Frame) -> chex.Array:
        """The sub-task's postcondition on the projected state and frame."""
        return self.env.postcondition(self.project(task), self._sub_frame(frame))

    def snapshot(self, task: Any) -> Any:
        """The sub-task's snapshot of the projected state."""
        return self.env.snapshot(self.project(task))

    def local_view(self, task: Any) -> Any:
        """The sub-task's local view of the projected state."""
        return self.env.local_view(self.project(task))

    def _sub_frame(self, frame: Frame) -> Frame:
        return frame._replace(program=self._to_sub[frame.program])

