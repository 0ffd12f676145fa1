"""Learned skills as actions: a trained policy that the machine runs inside ``step``.

A :class:`Skill` is what the machine knows of a trained policy: a pure, greedy, unbatched
``act`` function, its frozen parameters, and the environment it was trained on (whose program
library, posing and observations the policy expects). Binding it to a program of another task
(``ProgramEnv(..., skills={"ADD": skill})``) puts that program in ``skill`` mode: calling it is
one macro action, like a ``builtin``, but executed by the policy instead of the task's expert.

How a call runs (:func:`run_skill`), all inside the jitted ``step`` (a ``lax.while_loop``, so it
``vmap``s and ``scan``s with no host round trip):

1. the host task's state is *projected* to the skill's task (``ProgramEnv.skill_view``: e.g.
   Multiplication shows its accumulator, the shifted multiplicand, its carry and output rows as
   an Addition scratchpad);
2. a call stack of the skill's own task is opened with the program's frame, called with the
   host call's arguments;
3. the policy acts on the skill task's observations, and the skill task's ``step`` applies its
   actions (its builtins and its own skills included: a skill may call skills), until the
   program returns or the call's budget of decisions runs out (a failed call);
4. the result is *embedded* back into the host's state.

The call succeeds when the program returned with its postcondition holding (the skill task's
``success`` on the step its frame returns). Nothing here imports the agents: turning a run
directory into a ``Skill`` lives in ``npigym.skills``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp

from npigym.envs.machine import stack as call_stack
from npigym.envs.machine.library import AGENT
from npigym.envs.machine.types import Observation, State

if TYPE_CHECKING:  # pragma: no cover
    from npigym.envs.machine.env import ProgramEnv

# act(params, memory, observation, first, invalid) -> (action, memory), one env, greedy.
ActFn = Callable[[Any, Any, Observation, chex.Array, chex.Array], Tuple[chex.Array, Any]]


@dataclasses.dataclass(frozen=True, eq=False)
class Skill:
    """A trained policy for one program, as the machine runs it.

    Attributes:
        env: the program-machine environment the policy was trained on. The skill runs on
            this env's machine (its library, posing, builtins and bound skills), so its
            observations are exactly those the policy learned from.
        program: name of the program of ``env.library`` the policy executes (the env's root
            or any agent-executed program of it).
        params: the policy's frozen parameters; a jitted step closes over them as constants.
        act: ``act(params, memory, observation, first, invalid) -> (action, memory)`` for one
            (unbatched) env: the greedy action ``(program, arg0, arg1, arg2)`` of ``env``'s
            action space and the policy's memory after it. ``first`` is True on a call's first
            decision; ``invalid`` says the previous decision was refused as invalid.
        initial_memory: ``() -> memory``, the policy's memory when a call starts.
        budget: decisions one call may take; ``None``: ``env``'s step limit for the projected
            instance (``default_step_limit``, twice its expert's worst case) or ``time_limit``.
            A call that runs out has failed (postcondition False); its partial work stays.
        name: what to call the skill in messages and ``npigym skills list``.
    """

    env: "ProgramEnv"
    program: str
    params: Any
    act: ActFn
    initial_memory: Callable[[], Any]
    budget: Optional[int] = None
    name: str = ""

    def __post_init__(self) -> None:
        library = getattr(self.env, "library", None)
        if library is None:
            raise TypeError(f"skill {self.label}: its env must be a program-machine env, "
                            f"not {type(self.env).__name__}")
        if self.program not in library:
            raise ValueError(f"skill {self.label}: no program {self.program!r} in its env's "
                             f"library {list(library.names[1:])}")
        mode = library[self.program].mode
        if mode != AGENT:
            raise ValueError(f"skill {self.label}: {self.program} is {mode!r} in its env "
                             "(the policy must execute it: an agent-mode program)")
        if self.budget is not None and (isinstance(self.budget, bool)
                                        or not isinstance(self.budget, int) or self.budget < 1):
            raise ValueError(f"skill {self.label}: budget must be a positive int or None, "
                             f"not {self.budget!r}")

    @property
    def label(self) -> str:
        return self.name or self.program


class SkillCall(NamedTuple):
    """What one skill call did.

    Attributes:
        task: the skill task's state when the call ended (to embed into the host's).
        success: () bool, the program returned with its postcondition holding.
        decisions: () int32, the policy's decisions (the skill task's agent steps).
        primitive_steps: () int32, primitives applied, builtins' and nested skills' included.
    """

    task: Any
    success: chex.Array
    decisions: chex.Array
    primitive_steps: chex.Array


def run_skill(skill: Skill, task: Any, args: chex.Array, active: chex.Array) -> SkillCall:
    """Run ``skill``'s program on the skill task's state ``task`` with the policy.

    Args:
        skill: the skill.
        task: the skill task's state at the call (already projected from the host's).
        args: (3,) int32, the call's arguments (the program's frame is called with them).
        active: () bool; when False the loop makes no decision and ``task`` comes back as is
            (under ``vmap`` the loop runs while any env is active).
    """
    env = skill.env
    program = env.library.id(skill.program)
    stack = call_stack.new_stack(env.max_depth, program, env.snapshot(task))
    stack = stack.replace(args=stack.args.at[0].set(jnp.asarray(args, jnp.int32)))
    if skill.budget is not None:
        limit = jnp.asarray(skill.budget, jnp.int32)
    elif env.time_limit is not None:
        limit = jnp.asarray(env.time_limit, jnp.int32)
    else:
        limit = jnp.asarray(env.default_step_limit(task), jnp.int32)
    zero = jnp.zeros((), jnp.int32)
    state = State(task=task, stack=stack, step_count=zero, step_limit=limit,
                  key=jax.random.PRNGKey(0))
    false = jnp.zeros((), bool)

    def cond(carry):
        return active & ~carry["done"]

    def body(carry):
        action, memory = skill.act(skill.params, carry["memory"], carry["obs"], carry["first"],
                                   carry["invalid"])
        new_state, ts = env.step(carry["state"], action)
        done = ts.last()
        return dict(state=new_state, obs=ts.observation, memory=memory, first=false,
                    invalid=ts.extras["invalid_action"], done=done,
                    success=ts.extras["success"],
                    prims=carry["prims"] + ts.extras["primitive_steps"])

    carry = dict(state=state, obs=env._observe(task, stack), memory=skill.initial_memory(),
                 first=~false, invalid=false, done=false, success=false, prims=zero)
    out = jax.lax.while_loop(cond, body, carry)
    return SkillCall(task=out["state"].task, success=out["success"] & out["done"],
                     decisions=out["state"].step_count, primitive_steps=out["prims"])
