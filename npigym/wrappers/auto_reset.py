"""Auto-reset that keeps the real final observation, with a cheap key for the next episode."""

from __future__ import annotations

from typing import Tuple

import chex
import jax
from jumanji.env import Environment
from jumanji.types import TimeStep
from jumanji.wrappers import Wrapper

from npigym.envs.machine.generator import next_key


class AutoResetWrapper(Wrapper):
    """Resets an episode as soon as it ends, in the same step.

    On the step that ends an episode (``timestep.last()``), the returned state and observation
    are those of a fresh episode, while the step type (LAST), reward, discount and extras are
    the ending step's, and ``extras["next_obs"]`` holds the real final observation (every step,
    so the pytree is the same each step). Learners bootstrap from ``next_obs`` on truncation.

    This is ``jumanji.wrappers.AutoResetWrapper(env, next_obs_in_extras=True)`` except for the
    next episode's key. Jumanji splits ``state.key`` with threefry, which XLA:CPU runs as a
    rolled loop, and under ``vmap`` the reset branch runs at every step; here the key is
    derived with an integer hash (``npigym.envs.machine.generator.next_key``).
    Works with any Jumanji environment whose state has a ``key``.
    """

    def __init__(self, env: Environment):
        super().__init__(env)

    def reset(self, key: chex.PRNGKey) -> Tuple[chex.ArrayTree, TimeStep]:
        state, timestep = self._env.reset(key)
        return state, timestep.replace(extras={**timestep.extras,
                                               "next_obs": timestep.observation})

    def step(self, state: chex.ArrayTree, action: chex.Array) -> Tuple[chex.ArrayTree, TimeStep]:
        state, timestep = self._env.step(state, action)
        extras = {**timestep.extras, "next_obs": timestep.observation}

        def reset_episode(state: chex.ArrayTree) -> Tuple[chex.ArrayTree, chex.ArrayTree]:
            reset_state, reset_timestep = self._env.reset(next_key(state.key))
            return reset_state, reset_timestep.observation

        def keep(state: chex.ArrayTree) -> Tuple[chex.ArrayTree, chex.ArrayTree]:
            return state, timestep.observation

        state, observation = jax.lax.cond(timestep.last(), reset_episode, keep, state)
        return state, timestep.replace(observation=observation, extras=extras)
