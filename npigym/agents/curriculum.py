"""Episodes that start inside a subprogram: every program is its own task (AlphaNPI style).

:class:`SubprogramStartWrapper` turns a hierarchical program-machine env into a mixture of
tasks: each episode picks a program ``P`` (the root, or a subprogram) and, for a subprogram,
runs the env's expert on a fresh instance until the expert is about to call ``P`` (skipping a
random number of earlier calls of ``P`` so that later columns, carries etc. appear), makes that
call, and hands the agent ``P``'s fresh frame. The episode ends (termination) when ``P``
returns, and ``extras["success"]`` is then ``P``'s postcondition. The root's episodes are
ordinary episodes. With the frame-aware credit of the actor-critic and a postcondition bonus,
the subprograms learn their own jobs from the first updates instead of waiting until their
callers call them at the right moments.

The machine has no way to start an episode at a chosen frame, hence this wrapper (it only uses
``reset``, ``step`` and ``expert_action``). A ``start_program`` knob on ``ProgramEnv.reset`` would
make it cheaper: here the expert prefix is a ``lax.while_loop`` in ``reset``, which auto-reset
under ``vmap`` computes on every step for every env (capped by ``max_prefix_steps``).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import StepType, TimeStep, restart
from jumanji.wrappers import Wrapper

from npigym.envs.machine.generator import hash_stream, seed_word
from npigym.envs.machine.library import KIND_CALL, RETURN_ID
from npigym.envs.machine.types import State


@chex.dataclass
class StartState:
    """State of :class:`SubprogramStartWrapper`.

    Attributes:
        inner: the machine's state.
        start_depth: () int32, depth of the frame the episode started in.
        program: () int32, that frame's program (the task of this episode).
        forced_left: () int32, decisions of the start frame still to be made by the expert.
        key: the episode's key (auto-reset derives the next one from it).
    """

    inner: State
    start_depth: chex.Array
    program: chex.Array
    forced_left: chex.Array
    key: chex.PRNGKey


class SubprogramStartWrapper(Wrapper):
    """Start episodes at the root or at a subprogram's frame (see the module docstring).

    Args:
        env: a program-machine env whose programs the agent executes (it needs an expert:
            not a flat posing).
        weights: ``{program name: weight}``, how often episodes start in each program (the
            root's name for whole-task episodes). Programs must be agent-executed.
        max_skip: skip up to this many earlier calls of the chosen program (uniform).
        max_prefix_steps: cap on the expert steps run before the start; when ``P`` is not
            called within it (e.g. no column needs a CARRY) the episode starts at the root.
        max_forced: a *reverse curriculum* inside the start frame (Florensa et al. 2017;
            Salimans & Chen 2018): the expert also makes the first ``k`` decisions of ``P``
            (and everything they call), ``k = 0`` in half the episodes and otherwise uniform in
            ``[1, max_forced]``, but never ``P``'s own RETURN; the agent finishes ``P``. Those
            steps are flagged ``extras["forced"]``; the agent's network sees them (its memory
            stays that of a frame that made them) but the loss ignores them. The learning
            signal is still only the reward: the expert sets up start states, it is never
            imitated. 0 turns it off.
    """

    def __init__(self, env: Any, weights: Mapping[str, float], max_skip: int = 2,
                 max_prefix_steps: int = 64, max_forced: int = 0):
        super().__init__(env)
        base = getattr(env, "unwrapped", env)
        if not getattr(base, "has_expert", False):
            raise ValueError("a subprogram curriculum needs the env's expert; it is not "
                             "defined for flat or inlined posings")
        library = base.library
        if not weights:
            raise ValueError("weights must name at least one program")
        probs = np.zeros(library.num_programs, np.float64)
        for name, w in weights.items():
            pid = library.id(name)
            if pid != library.root and library.kind[pid] != KIND_CALL:
                raise ValueError(f"curriculum program {name} must be executed by the agent "
                                 f"(mode 'agent'), not {library[pid].mode!r}")
            if not (isinstance(w, (int, float)) and w >= 0):
                raise ValueError(f"curriculum weight of {name} must be >= 0, not {w!r}")
            probs[pid] = float(w)
        if probs.sum() <= 0:
            raise ValueError("curriculum weights must not all be 0")
        self.library = library
        self.weights = {library.names[i]: float(p) for i, p in enumerate(probs) if p > 0}
        self._cdf = jnp.asarray(np.cumsum(probs / probs.sum()), jnp.float32)
        self.max_skip = int(max_skip)
        self.max_prefix_steps = int(max_prefix_steps)
        self.max_forced = int(max_forced)

    def reset(self, key: chex.PRNGKey) -> Tuple[StartState, TimeStep]:
        env = self._env
        root_state, root_ts = env.reset(key)
        word = seed_word(key)
        u = (hash_stream(word, 101) >> 8).astype(jnp.float32) / float(1 << 24)
        program = jnp.minimum(jnp.searchsorted(self._cdf, u, side="right"),
                              self.library.num_programs - 1).astype(jnp.int32)
        skip = (hash_stream(word, 102) % jnp.uint32(self.max_skip + 1)).astype(jnp.int32)
        is_root = program == self.library.root

        # Run the expert until it is about to make the (skip + 1)-th call of `program`.
        def cond(carry):
            _, ts, n, seen, found = carry
            return ~found & ~is_root & ~ts.last() & (n < self.max_prefix_steps)

        def body(carry):
            state, ts, n, seen, _ = carry
            action = env.expert_action(state)
            calls_it = action[0] == program
            found = calls_it & (seen == skip)
            new_state, new_ts = env.step(state, action)
            def keep(a, b):
                return jax.tree.map(lambda x, y: jnp.where(found, x, y), a, b)

            return (keep(state, new_state), keep(ts, new_ts), n + 1,
                    seen + calls_it.astype(jnp.int32), found)

        zero = jnp.zeros((), jnp.int32)
        state, ts, _, _, found = jax.lax.while_loop(
            cond, body, (root_state, root_ts, zero, zero, jnp.zeros((), bool)))
        # Make the call: the agent starts in the callee's fresh frame.
        called, called_ts = env.step(state, env.expert_action(state))
        use_sub = found & ~is_root
        inner = jax.tree.map(lambda a, b: jnp.where(use_sub, a, b), called, root_state)
        inner = inner.replace(step_count=jnp.zeros((), jnp.int32))
        obs = jax.tree.map(lambda a, b: jnp.where(use_sub, a, b), called_ts.observation,
                           root_ts.observation)
        program = jnp.where(use_sub, program, self.library.root)
        # Half the episodes are the whole program; the others hand over after 1..max_forced
        # of its decisions (a uniform k in [0, max_forced] would leave most of the practice of
        # short programs to their last steps).
        forced = 1 + (hash_stream(word, 103) % jnp.uint32(max(self.max_forced, 1))
                      ).astype(jnp.int32)
        forced = jnp.where((hash_stream(word, 104) & 1) == 0, 0, forced)
        forced = jnp.where(self.max_forced > 0, forced, 0)
        start = StartState(inner=inner, start_depth=inner.stack.depth, program=program,
                           forced_left=jnp.where(use_sub, forced, 0), key=key)
        extras = {**root_ts.extras, "start_program": program,
                  "forced": jnp.zeros((), bool)}
        return start, restart(obs, extras)

    def step(self, state: StartState, action: chex.Array) -> Tuple[StartState, TimeStep]:
        env = self._env
        in_start_frame = state.inner.stack.depth == state.start_depth
        expert = env.expert_action(state.inner) if self.max_forced else jnp.zeros(4, jnp.int32)
        # The agent always makes the start frame's RETURN itself.
        forcing = (state.forced_left > 0) & ~(in_start_frame & (expert[0] == RETURN_ID))
        action = jnp.where(forcing, expert, jnp.asarray(action, jnp.int32))
        forced_left = jnp.where(forcing, state.forced_left - in_start_frame.astype(jnp.int32),
                                0)
        inner, ts = env.step(state.inner, action)
        # The start frame returned: its sub-episode is over (the root's RETURN already
        # terminates the env's own episode).
        ended = (state.start_depth > 0) & (inner.stack.depth < state.start_depth)
        extras = dict(ts.extras)
        extras["success"] = jnp.where(ended, ts.extras["postcondition"], ts.extras["success"])
        extras["start_program"] = state.program
        extras["forced"] = forcing
        ts = ts.replace(
            step_type=jnp.where(ended, StepType.LAST, ts.step_type),
            discount=jnp.where(ended, jnp.zeros_like(ts.discount), ts.discount),
            extras=extras)
        return state.replace(inner=inner, forced_left=forced_left), ts

    def render(self, state: StartState, mode: Optional[str] = None) -> Any:
        return self._env.render(state.inner, mode)

