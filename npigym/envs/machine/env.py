"""``ProgramEnv``: the program machine that every task runs on.

A task subclasses :class:`ProgramEnv` and supplies its program library, a generator, and four
functions: ``apply_primitive`` (what a primitive does to the task state), ``expert_call`` (NPI's
execution trace, one call at a time), ``postcondition`` (did a returning program do its job) and
``local_view`` (NPI's encoder input). The machine owns the rest: the call stack, action masks,
builtin execution, the step limit, rewards, observations and specs.
"""

from __future__ import annotations

import abc
import math
from functools import cached_property
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji import specs
from jumanji.env import Environment
from jumanji.types import StepType, TimeStep, restart

from npigym.envs.machine import stack as call_stack
from npigym.envs.machine.generator import Generator
from npigym.envs.machine.library import (
    KIND_BUILTIN,
    KIND_CALL,
    KIND_NONE,
    KIND_PRIMITIVE,
    KIND_RETURN,
    KIND_SKILL,
    NUM_ARGS,
    PRIMITIVE,
    RETURN_ID,
    SKILL,
    ProgramLibrary,
)
from npigym.envs.machine.skill import Skill, run_skill
from npigym.envs.machine.types import CallStack, Frame, Observation, State
from npigym.envs.machine.viewer import ProgramViewer

REWARDS = ("sparse", "dense")
OBSERVATIONS = ("local", "full")
RENDER_MODES = ("ansi", "rgb_array", "human")


def computed_once(flag: chex.Array) -> chex.Array:
    """``flag`` (bool) unchanged, but computed once per env instead of once per consumer cell.

    XLA:CPU's fusion copies cheap elementwise producers into every consumer, and under ``vmap``
    a per-env flag that selects between two task states is broadcast over every cell of them:
    the whole validity chain of an action (masks, argument checks, the primitive's own check)
    was recomputed for each of the pad's cells. An integer remainder counts as expensive, so
    XLA computes it once and the consumers read one value per env (``x % p`` is ``x`` for
    ``x`` in {0, 1}; ``generator.seed_word`` uses a remainder for the same reason). A random
    Addition rollout of 4,096 envs: 0.90-0.91x the time (benchmarks/ab_rollout.py, two cores,
    quiet host); Sorting: 0.83x; inside the builtin loop, macro Addition 0.75x and macro
    Sorting 0.93x.
    """
    return (flag.astype(jnp.uint32) % jnp.uint32(4_294_967_291)) != 0


_INT32 = np.iinfo(np.int32)


def _int32_action(action: Any) -> chex.Array:
    """``action`` as int32; one that is not all whole numbers in int32's range becomes
    ``(-1, 0, ...)``, an invalid action (a no-op). The dtype decides statically: int32 and
    narrower integer actions are only converted (no extra work in the jitted step)."""
    if not isinstance(action, jax.Array):  # a host value: keep numpy's int64 to check it
        action = np.asarray(action)
    dtype = np.dtype(action.dtype)
    if dtype == np.bool_ or (np.issubdtype(dtype, np.integer)
                             and np.can_cast(dtype, np.int32)):
        return jnp.asarray(action).astype(jnp.int32)
    xp = np if isinstance(action, np.ndarray) else jnp
    if np.issubdtype(dtype, np.integer):
        ok = xp.all((action >= _INT32.min) & (action <= _INT32.max)) if dtype.kind == "i" \
            else xp.all(action <= _INT32.max)
    else:  # floating (or complex: its real part must hold the value and the rest be 0)
        real = xp.real(action)
        ok = xp.all(xp.isfinite(real) & (real == xp.round(real)) & (real >= _INT32.min)
                    & (real <= _INT32.max) & (xp.imag(action) == 0))
        action = real
    fallback = np.zeros(np.shape(action), np.int32)
    fallback[..., :1] = -1
    if xp is np:  # decided on the host
        return jnp.asarray(np.clip(action, _INT32.min, _INT32.max).astype(np.int32) if ok
                           else fallback)
    clipped = jnp.clip(action, _INT32.min, _INT32.max).astype(jnp.int32)
    return jnp.where(ok, clipped, jnp.asarray(fallback))


class ProgramEnv(Environment[State, specs.MultiDiscreteArray, Observation], abc.ABC):
    """Base class of the environments where the agent acts by calling programs.

    - Action: ``(program, arg0, arg1, arg2)``, a ``MultiDiscreteArray``. Arguments a program
      does not take are ignored. An *invalid* action (a program the current frame may not call,
      an argument value the program does not allow, a primitive the task rejects such as moving a
      pointer off the pad) changes nothing, costs ``invalid_action_penalty`` and still counts
      towards the step limit; ``extras["invalid_action"]`` flags it. So is an action that is
      not a whole number in int32's range: a float one (NaN, infinite or fractional), or an
      int64 / uint64 one beyond int32 (checked on the host for numpy inputs; inside ``jit``
      without x64, JAX itself wraps int64 inputs to int32 at the call boundary, before
      ``step`` sees them). int32 actions, the agents' own, pay nothing for these checks.
    - Calling an ``agent`` program pushes a frame; the agent then acts inside it until it calls
      RETURN. A ``builtin`` program runs to completion inside the step (the task's expert
      executes it); a ``skill`` program likewise, executed by the trained policy bound to it
      (``skills=``, :mod:`npigym.envs.machine.skill`). A ``primitive`` changes the task
      state. RETURN pops the frame; RETURN from the root ends the episode (``termination``).
    - Every RETURN (and every builtin or skill call) reports the returning program and whether
      its postcondition held in ``extras["returned_program"]`` (-1 when nothing returned) and
      ``extras["postcondition"]``; ``extras["success"]`` is True on the step that ends the
      episode with the root program's postcondition holding.
    - The episode is cut with ``truncation`` (discount 1: the budget is artificial, not a task
      outcome) when ``step_count`` reaches ``step_limit``.
    - Reward: ``"sparse"`` pays 1 for a successful root RETURN. ``"dense"`` adds the change in
      the task's progress measure (in [0, 1]) every step.
    - With skills bound, ``extras["skill_steps"]`` counts the decisions the skill's policy took
      in this step's call (0 for other actions), and a call that used up its budget has
      failed (``postcondition`` False).
    """

    # The constructor knobs that bound an instance's size, e.g. ("min_digits", "max_digits");
    # the CLI's ``--size N`` (alias ``--digits`` / ``--length``) sets both to N.
    size_knobs: Tuple[str, ...] = ()

    def __init__(
        self,
        library: ProgramLibrary,
        generator: Generator,
        *,
        reward: str = "sparse",
        observation: str = "local",
        time_limit: Optional[int] = None,
        invalid_action_penalty: float = 0.0,
        render_mode: str = "ansi",
        viewer: Optional[ProgramViewer] = None,
        skills: Optional[Mapping[str, Skill]] = None,
    ):
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, not {reward!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, not {observation!r}")
        if time_limit is not None and (isinstance(time_limit, bool)
                                       or not isinstance(time_limit, (int, np.integer))
                                       or time_limit < 1):
            raise ValueError(f"time_limit must be a positive int or None, not {time_limit!r}")
        if (isinstance(invalid_action_penalty, bool)
                or not isinstance(invalid_action_penalty, (int, float, np.number))
                or not math.isfinite(invalid_action_penalty)):
            raise ValueError("invalid_action_penalty must be a finite number, "
                             f"not {invalid_action_penalty!r}")
        if render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be one of {RENDER_MODES}, not {render_mode!r}")
        if not isinstance(generator, Generator):
            raise TypeError(f"generator must be an npigym Generator, "
                            f"not {type(generator).__name__}")
        library, self.skills = _bind_skills(library, skills)
        self.library = library
        self.generator = generator
        self.reward_type = reward
        self.observation_type = observation
        self.time_limit = None if time_limit is None else int(time_limit)
        self.invalid_action_penalty = float(invalid_action_penalty)
        self.render_mode = render_mode
        self.viewer = viewer
        self.max_depth = library.max_depth
        lib = library
        # Static tables, baked into the jitted step as constants.
        self._callable = jnp.asarray(lib.callable)
        self._arg_valid = jnp.asarray(lib.arg_valid)
        self._uses_arg = jnp.asarray(np.arange(NUM_ARGS)[None, :] < lib.num_args[:, None])
        self._kind = jnp.asarray(lib.kind)
        self._is_primitive = jnp.asarray([p.mode == PRIMITIVE for p in lib.programs]).at[
            RETURN_ID].set(False)
        room = np.where(lib.kind == KIND_CALL, 1,
                        np.where(lib.kind == KIND_BUILTIN, lib.builtin_depth, 0))
        self._room_needed = jnp.asarray(room, jnp.int32)
        # Each bound skill's (project, embed) pair, by program id: checked once here, so a task
        # that cannot show itself to a skill fails at construction, not inside a trace.
        self._skill_views = {library.id(name): self.skill_view(name) for name in self.skills}
        for name, skill in self.skills.items():
            _check_skill_fits(self, name, skill, self._skill_views[library.id(name)][0])
        super().__init__()

    # ------------------------------------------------------------------------------------------
    # What a task supplies.
    # ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def apply_primitive(self, task: Any, program: chex.Array, args: chex.Array
                        ) -> Tuple[Any, chex.Array]:
        """Apply primitive ``program(args)``; return the new task state and whether it was valid.

        Called for every primitive id (and only primitive ids). An invalid primitive's task state
        is discarded, so it need not be meaningful.
        """

    @abc.abstractmethod
    def expert_call(self, task: Any, frame: Frame) -> chex.Array:
        """The expert's next call ``(program, arg0, arg1, arg2)`` from ``frame`` (NPI's trace)."""

    @abc.abstractmethod
    def postcondition(self, task: Any, frame: Frame) -> chex.Array:
        """Whether ``frame``'s program did its job, from its snapshot at call time to ``task``."""

    @abc.abstractmethod
    def local_view(self, task: Any) -> Any:
        """NPI's view of the task state (values under the pointers, edge flags)."""

    @property
    @abc.abstractmethod
    def local_view_spec(self) -> specs.Spec:
        """Spec of ``local_view``."""

    def full_view(self, task: Any) -> Any:
        """The whole task state as the agent may see it with ``observation="full"``."""
        raise NotImplementedError(f"{type(self).__name__} has no full view")

    @property
    def full_view_spec(self) -> specs.Spec:
        raise NotImplementedError(f"{type(self).__name__} has no full view")

    def snapshot(self, task: Any) -> Any:
        """What postconditions need of the state at call time (default: all of it)."""
        return task

    def skill_view(self, program: str) -> Tuple[Callable[[Any], Any], Callable[[Any, Any], Any]]:
        """How a skill bound to ``program`` sees the task: ``(project, embed)``.

        ``project(task)`` is the skill's task state at the call; ``embed(task, skill_task)`` is
        this task's state after the call. The default is the identity, right for a library that
        extends the skill's own task (``Max-v0`` over ``Sorting-v0``); composition tasks
        override it (Multiplication shows its accumulator rows as an Addition scratchpad).
        """
        del program
        return (lambda task: task), (lambda task, skill_task: skill_task)

    def progress(self, task: Any) -> chex.Array:
        """Task progress in [0, 1] for the dense reward."""
        raise NotImplementedError(f"{type(self).__name__} has no dense reward")

    def default_step_limit(self, task: Any) -> chex.Array:
        """Step budget of an instance when ``time_limit`` is None."""
        raise NotImplementedError(f"{type(self).__name__} needs a time_limit")

    # ------------------------------------------------------------------------------------------
    # Jumanji API.
    # ------------------------------------------------------------------------------------------
    def reset(self, key: chex.PRNGKey, size: Optional[chex.Array] = None
              ) -> Tuple[State, TimeStep[Observation]]:
        """Draw an instance and start the root program with an empty call history.

        The instance is a function of ``key`` (generators hash its data); the state keeps
        ``key`` for auto-reset wrappers, which derive the next episode's key from it. ``size``
        (a traced int, e.g. a size curriculum's current size) caps the instance's size below
        the env's largest (``generator.sample_at_size``); the arrays keep the largest's shapes.
        """
        task = self.generator(key) if size is None else self.generator.sample_at_size(key, size)
        stack = call_stack.new_stack(self.max_depth, self.library.root, self.snapshot(task))
        if self.time_limit is None:
            limit = jnp.asarray(self.default_step_limit(task), jnp.int32)
        else:
            limit = jnp.asarray(self.time_limit, jnp.int32)
        state = State(task=task, stack=stack, step_count=jnp.zeros((), jnp.int32),
                      step_limit=limit, key=key)
        extras = self._extras(invalid=False, returned=-1, postcondition=False, success=False,
                              primitive_steps=0, skill_steps=0)
        return state, restart(self._observe(task, stack), extras)

    def step(self, state: State, action: chex.Array) -> Tuple[State, TimeStep[Observation]]:
        """One agent decision: call a primitive, a program, or RETURN."""
        action = _int32_action(action)
        chex.assert_shape(action, (1 + NUM_ARGS,))
        task, stack = state.task, state.stack
        frame = call_stack.top(stack)
        program = jnp.clip(action[0], 0, self.library.num_programs - 1)
        args = action[1:]
        valid = (action[0] == program) & self._action_mask(frame.program, stack.depth)[program]
        valid &= self._args_valid(program, args)
        args = jnp.where(self._uses_arg[program], args, 0)  # canonical: unused slots are 0
        kind = jnp.where(valid, self._kind[program], KIND_NONE)
        is_call, is_builtin, returning = (kind == KIND_CALL, kind == KIND_BUILTIN,
                                          kind == KIND_RETURN)
        is_skill = kind == KIND_SKILL
        snapshot = self.snapshot(task)

        prim_task, prim_ok = self.apply_primitive(task, program, args)
        prim_ok &= kind == KIND_PRIMITIVE
        prim_ok = computed_once(prim_ok)
        new_task = call_stack.tree_where(prim_ok, prim_task, task)
        new_stack = call_stack.update(stack, count=prim_ok | is_call | is_builtin | is_skill,
                                      push=is_call,
                                      pop=returning, program=program, args=args,
                                      snapshot=snapshot)
        post = returning & self.postcondition(task, frame)
        primitive_steps = prim_ok.astype(jnp.int32)
        if self.library.has_builtin:  # static: only libraries with builtins pay for the loop
            opened = call_stack.update(stack, count=is_builtin, push=is_builtin, pop=False,
                                       program=program, args=args, snapshot=snapshot)
            built_task, built_stack, built_steps = self._run_builtin(
                task, opened, stack.depth, is_builtin, state.step_limit)
            built_frame = Frame(program, args, jnp.zeros((), jnp.int32), snapshot)
            new_task = call_stack.tree_where(is_builtin, built_task, new_task)
            new_stack = call_stack.tree_where(is_builtin, built_stack, new_stack)
            post |= is_builtin & self.postcondition(built_task, built_frame)
            primitive_steps += jnp.where(is_builtin, built_steps, 0)
        skill_steps = jnp.zeros((), jnp.int32)
        for skill_program, skill in self.skills.items():  # static: one loop per bound skill
            project, embed = self._skill_views[self.library.id(skill_program)]
            called = is_skill & (program == self.library.id(skill_program))
            result = run_skill(skill, project(task), args, called)
            new_task = call_stack.tree_where(called, embed(task, result.task), new_task)
            post |= called & result.success
            primitive_steps += jnp.where(called, result.primitive_steps, 0)
            skill_steps += jnp.where(called, result.decisions, 0)

        invalid = ~valid | ((kind == KIND_PRIMITIVE) & ~prim_ok)
        returned = jnp.where(returning, frame.program,
                             jnp.where(is_builtin | is_skill, program, -1))
        done = returning & (stack.depth == 0)
        success = done & post

        reward = success.astype(jnp.float32)
        if self.reward_type == "dense":
            reward += self.progress(new_task) - self.progress(task)
        reward -= self.invalid_action_penalty * invalid.astype(jnp.float32)

        step_count = state.step_count + 1
        new_state = State(task=new_task, stack=new_stack, step_count=step_count,
                          step_limit=state.step_limit, key=state.key)
        # termination (discount 0) when the root returns, truncation (discount 1) at the step
        # limit, else a transition: written out rather than jumanji's termination/truncation/
        # transition under lax.cond, which under vmap selects between three observations.
        truncated = ~done & (step_count >= state.step_limit)
        timestep = TimeStep(
            step_type=jnp.where(done | truncated, StepType.LAST, StepType.MID),
            reward=reward,
            discount=jnp.where(done, 0.0, 1.0).astype(jnp.float32),
            observation=self._observe(new_task, new_stack),
            extras=self._extras(invalid=invalid, returned=returned, postcondition=post,
                                success=success, primitive_steps=primitive_steps,
                                skill_steps=skill_steps),
        )
        return new_state, timestep

    def expert_action(self, state: State) -> chex.Array:
        """The expert's action in ``state``: NPI's execution trace, one call per step (pure JAX).

        Raises:
            ValueError: in a flat or partly inlined posing. The expert's calls follow the task's
                hierarchy, which an inlined program hides from the machine; run the expert on
                the hierarchical posing (e.g. with ``npigym.traces``) and replay its primitives.
        """
        if not self.has_expert:
            raise ValueError(
                "expert_action needs every program's frame on the call stack, but this posing "
                f"inlines {[p.name for p in self.library.programs if p.mode == 'inline']}; use "
                "modes='hierarchical' or 'macro' and replay the expert's primitives instead")
        return self.expert_call(state.task, call_stack.top(state.stack))

    @property
    def has_expert(self) -> bool:
        """Whether ``expert_action`` is defined: not in flat or partly inlined posings."""
        return not self.library.has_inline

    @cached_property
    def observation_spec(self) -> specs.Spec[Observation]:
        lib = self.library
        # ``full`` only when observed: no None in the spec (the observation's ``full`` is then
        # None, which ``Observation._asdict`` leaves out).
        full = {"full": self.full_view_spec} if self.observation_type == "full" else {}
        return specs.Spec(
            Observation,
            "ObservationSpec",
            program=specs.BoundedArray((), jnp.int32, 0, lib.num_programs - 1, "program"),
            args=specs.MultiDiscreteArray(jnp.asarray(lib.arg_num_values), jnp.int32, "args"),
            depth=specs.BoundedArray((), jnp.int32, 0, self.max_depth - 1, "depth"),
            action_mask=specs.BoundedArray((lib.num_programs,), bool, False, True, "action_mask"),
            local=self.local_view_spec,
            **full,
        )

    @cached_property
    def action_spec(self) -> specs.MultiDiscreteArray:
        lib = self.library
        return specs.MultiDiscreteArray(
            num_values=jnp.asarray([lib.num_programs, *lib.arg_num_values], jnp.int32),
            name="action")

    def render(self, state: State, mode: Optional[str] = None) -> Any:
        """Render one (unbatched) ``state``: ``"ansi"`` text (the default), an ``"rgb_array"``
        image, or ``"human"``, which prints the text."""
        mode = mode or self.render_mode
        if mode not in RENDER_MODES:
            raise ValueError(f"render mode must be one of {RENDER_MODES}, not {mode!r}")
        if self.viewer is None:
            raise NotImplementedError(f"{type(self).__name__} has no viewer")
        if mode == "rgb_array":
            return self.viewer.render_rgb(state)
        text = self.viewer.render_text(state)
        if mode == "human":
            print(text)
            return None
        return text

    def animate(self, states: Sequence[State], save_path: Optional[str] = None,
                interval: int = 200) -> Any:
        """Animate a sequence of (unbatched) states as a matplotlib animation; with ``save_path``
        also write it (``.gif`` via Pillow)."""
        if self.viewer is None:
            raise NotImplementedError(f"{type(self).__name__} has no viewer")
        return self.viewer.animate(states, save_path, interval)

    def __repr__(self) -> str:
        modes = ", ".join(f"{n}={m}" for n, m in self.library.modes.items() if m != PRIMITIVE)
        return (f"{type(self).__name__}(reward={self.reward_type!r}, "
                f"observation={self.observation_type!r}, modes=({modes}))")

    # ------------------------------------------------------------------------------------------
    # Machine internals.
    # ------------------------------------------------------------------------------------------
    def _action_mask(self, program: chex.Array, depth: chex.Array) -> chex.Array:
        """Programs callable from a frame of ``program`` at ``depth`` (room on the stack)."""
        return self._callable[program] & (depth + self._room_needed < self.max_depth)

    def _args_valid(self, program: chex.Array, args: chex.Array) -> chex.Array:
        """The arguments ``program`` takes are in range and allowed; the others are ignored."""
        width = self._arg_valid.shape[-1]
        in_range = (args >= 0) & (args < width)
        allowed = self._arg_valid[program, jnp.arange(NUM_ARGS), jnp.clip(args, 0, width - 1)]
        return jnp.all(jnp.where(self._uses_arg[program], in_range & allowed, True))

    def _observe(self, task: Any, stack: CallStack) -> Observation:
        frame = call_stack.top(stack)
        return Observation(
            program=frame.program,
            args=frame.args,
            depth=stack.depth,
            action_mask=self._action_mask(frame.program, stack.depth),
            local=self.local_view(task),
            full=self.full_view(task) if self.observation_type == "full" else None,
        )

    def _run_builtin(self, task: Any, stack: CallStack, caller_depth: chex.Array,
                     active: chex.Array, limit: chex.Array) -> Tuple[Any, CallStack, chex.Array]:
        """Execute the frame on top of ``stack`` with the expert until it returns.

        Inside a builtin every program runs as the expert would run it (primitives applied,
        programs pushed as frames, whatever their mode), so the subtree is the task's reference
        implementation. ``limit`` caps the loop's iterations in case an expert never returns.
        Returns the task state, the stack (the caller's frame on top again, its call already
        counted) and the number of primitives applied.
        """

        def cond(carry):
            _, s, n, _ = carry
            return active & (s.depth > caller_depth) & (n < limit)

        def body(carry):
            t, s, n, prims = carry
            call = self.expert_call(t, call_stack.top(s))
            q, q_args = call[0], call[1:]
            is_prim = self._is_primitive[q]
            is_return = q == RETURN_ID
            t_prim, ok = self.apply_primitive(t, q, q_args)
            ok &= is_prim
            s = call_stack.update(s, count=~is_return, push=~is_prim & ~is_return,
                                  pop=is_return, program=q, args=q_args,
                                  snapshot=self.snapshot(t))
            t = call_stack.tree_where(computed_once(ok), t_prim, t)
            return t, s, n + 1, prims + ok.astype(jnp.int32)

        zero = jnp.zeros((), jnp.int32)
        task, stack, _, primitive_steps = jax.lax.while_loop(
            cond, body, (task, stack, zero, zero))
        return task, stack, primitive_steps

    def _extras(self, *, invalid: Any, returned: Any, postcondition: Any, success: Any,
                primitive_steps: Any, skill_steps: Any) -> Dict[str, chex.Array]:
        extras = {
            "invalid_action": jnp.asarray(invalid, bool),
            "returned_program": jnp.asarray(returned, jnp.int32),
            "postcondition": jnp.asarray(postcondition, bool),
            "success": jnp.asarray(success, bool),
            "primitive_steps": jnp.asarray(primitive_steps, jnp.int32),
        }
        if self.skills:  # static: envs without skills keep the extras they always had
            extras["skill_steps"] = jnp.asarray(skill_steps, jnp.int32)
        return extras


def _check_skill_fits(env: "ProgramEnv", program: str, skill: Skill,
                      project: Callable[[Any], Any]) -> None:
    """The task state ``env`` shows a skill for ``program`` has the skill task's structure.

    Compared abstractly (``jax.eval_shape``, nothing runs): the same pytree of leaves with the
    same dtypes and ranks. Sizes may differ (a Multiplication pad is wider than the Addition
    pads a skill trained on), but a skill of another task (a Sorting policy bound to
    Multiplication's ADD) fails here, before anything compiles.
    """
    key = jax.random.PRNGKey(0)
    shown = jax.eval_shape(project, jax.eval_shape(env.generator, key))
    wanted = jax.eval_shape(skill.env.generator, key)

    def describe(tree: Any) -> Any:
        return jax.tree.map(lambda x: (str(x.dtype), len(x.shape)), tree)

    if (jax.tree.structure(shown) != jax.tree.structure(wanted)
            or describe(shown) != describe(wanted)):
        raise ValueError(
            f"skills: skill {skill.label} runs on {type(skill.env).__name__}'s task state, but "
            f"{type(env).__name__} shows its {program} a {type(shown).__name__} "
            f"({jax.tree.structure(shown)}); bind a skill trained on the task this program "
            "belongs to")


def _bind_skills(library: ProgramLibrary, skills: Optional[Mapping[str, Skill]]
                 ) -> Tuple[ProgramLibrary, Dict[str, Skill]]:
    """The library with every bound program in ``skill`` mode, and the bindings checked.

    Raises:
        ValueError: a binding to an unknown program or a primitive, a skill whose program takes
            other arguments than the program it is bound to, or a program in ``skill`` mode
            with no skill bound.
        TypeError: a binding that is not a :class:`Skill`.
    """
    skills = dict(skills or {})
    for name, skill in skills.items():
        if not isinstance(skill, Skill):
            raise TypeError(f"skills[{name!r}] must be an npigym Skill (npigym.skills.load "
                            f"turns a saved skill or run directory into one), not "
                            f"{type(skill).__name__}")
        if name not in library:
            raise ValueError(f"skills: no program {name!r} to bind {skill.label} to; programs "
                             f"are {list(library.names[1:])}")
        if library[name].mode == PRIMITIVE:
            raise ValueError(f"skills: {name} is a primitive; only programs can be skills")
        ours = [(a.name, a.values) for a in library[name].args]
        theirs = [(a.name, a.values) for a in skill.env.library[skill.program].args]
        if ours != theirs:
            raise ValueError(f"skills: {name} takes arguments {ours} here but skill "
                             f"{skill.label} executes {skill.program} with {theirs}")
    if skills:
        root = library.names[library.root]
        modes = {**library.modes, **{name: SKILL for name in skills}}
        library = ProgramLibrary(library.programs[1:], root, modes)
    unbound = [n for n in library.skill_programs if n not in skills]
    if unbound:
        raise ValueError(f"modes: {unbound} are in 'skill' mode but no skill is bound to them; "
                         "pass skills={program: skill}")
    return library, skills
