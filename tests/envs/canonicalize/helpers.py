"""Helpers of the canonicalization tests: small images, compiled rollouts."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from npigym.agents.random import program_action_from_word
from npigym.envs.canonicalize import Canonicalize
from npigym.envs.machine.generator import hash_stream
from npigym.envs.machine.stack import tree_where
from npigym.wrappers.auto_reset import AutoResetWrapper

IMAGE = 16  # small images keep the suite fast; the renderer's cost is per pixel


def make_expert_rollout(env: Canonicalize, num_steps: int):
    """A jitted ``keys -> (first states, final states, done, records)``: every env runs the
    expert for ``num_steps`` steps; an env that has ended is frozen (records marked inactive)."""

    @jax.jit
    def run(keys):
        state, _ = jax.vmap(env.reset)(keys)

        def body(carry, _):
            state, done = carry
            action = jax.vmap(env.expert_action)(state)
            new_state, ts = jax.vmap(env.step)(state, action)
            record = {
                "active": ~done,
                "action": action,
                "returned": ts.extras["returned_program"],
                "postcondition": ts.extras["postcondition"],
                "success": ts.extras["success"],
                "invalid": ts.extras["invalid_action"],
                "last": ts.last(),
                "reward": ts.reward,
                "primitive_steps": ts.extras["primitive_steps"],
            }
            new_state = jax.vmap(tree_where)(done, state, new_state)
            return (new_state, done | ts.last()), record

        done = jnp.zeros(keys.shape[0], bool)
        (final, done), records = jax.lax.scan(body, (state, done), None, length=num_steps)
        return state, final, done, records

    return run


def expert_results(env: Canonicalize, num_envs: int, seed: int = 0
                   ) -> Tuple[Any, Any, np.ndarray, Dict[str, np.ndarray]]:
    """Run the expert on ``num_envs`` random instances up to the env's step limit."""
    keys = jax.random.split(jax.random.PRNGKey(seed), num_envs)
    limit = 2 * env.expert_worst_case
    first, final, done, records = make_expert_rollout(env, limit)(keys)
    return first, final, np.asarray(done), jax.tree.map(np.asarray, records)


def make_random_rollout(env: Canonicalize, num_steps: int):
    """A jitted ``(keys, word) -> (final states, records)`` of uniformly random valid actions
    under auto-reset, recording what the invariants need each step."""
    wrapped = AutoResetWrapper(env)

    @jax.jit
    def run(keys, word):
        state, ts = jax.vmap(wrapped.reset)(keys)
        n = keys.shape[0]

        def body(carry, t):
            state, obs = carry
            words = hash_stream(word + t, jnp.arange(n, dtype=jnp.uint32))
            action = jax.vmap(lambda w, o: program_action_from_word(env, w, o))(words, obs)
            state, ts = jax.vmap(wrapped.step)(state, action)
            record = {"observation": ts.observation, "next_obs": ts.extras["next_obs"],
                      "scene": state.task, "step_count": state.step_count,
                      "step_limit": state.step_limit, "invalid": ts.extras["invalid_action"],
                      "reward": ts.reward, "last": ts.last()}
            return (state, ts.observation), record

        (state, _), records = jax.lax.scan(body, (state, ts.observation),
                                           jnp.arange(num_steps, dtype=jnp.uint32))
        return state, records

    return run


class ProblemEnv:
    """An env over fixed ``problems`` with compiled reset / step / expert, and ``start(i)``, a
    state whose instance is ``problems[i]`` (a key the generator maps to it)."""

    def __init__(self, problems, **kwargs):
        from npigym.envs.canonicalize import ProblemGenerator
        from npigym.envs.machine.generator import seed_word, uniform_int

        self.problems = list(problems)
        self.env = Canonicalize(generator=ProblemGenerator(self.problems), **kwargs)
        self.reset = jax.jit(self.env.reset)
        self.step = jax.jit(self.env.step)
        self.expert = None if self.env.library.has_inline else jax.jit(self.env.expert_action)
        keys = jax.random.split(jax.random.PRNGKey(0), 4096)
        # The generator's own draw, so the mapping follows any change to uniform_int.
        chosen = np.asarray(uniform_int(jax.vmap(seed_word)(keys), 0, len(self.problems) - 1))
        self._keys = [keys[int(np.flatnonzero(chosen == i)[0])]
                      for i in range(len(self.problems))]

    def start(self, index: int):
        state, timestep = self.reset(self._keys[index])
        return state, timestep

    def run_expert(self, index: int):
        """The expert's calls (as text), the states after each, and the final timestep."""
        state, ts = self.start(index)
        calls, states = [], []
        while not ts.last():
            action = self.expert(state)
            calls.append(self.env.library.format_call(int(action[0]), np.asarray(action[1:])))
            state, ts = self.step(state, action)
            states.append((state, ts))
        return calls, states, ts
