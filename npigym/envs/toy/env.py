"""The bsuite Discounting Chain as a Jumanji environment.

Five actions. The episode's *first* action picks a context ``c``; later actions have no effect.
Context ``c`` pays one reward at step ``k_c`` of the episode, ``k = (1, 3, 10, 30, 100)``: 1.0 for
every context except ``mapping_seed``'s (default 3, ``k = 30``), which pays 1.1. Episodes last
exactly 100 steps and terminate. So the optimal undiscounted return is 1.1 and every other
choice returns 1.0; an agent discounting with ``gamma`` prefers the 1.1 arm only when
``1.1 gamma**29 > 1`` (``gamma > 0.99672``). It is the toy problem on which Bonnet, Midgley and
Laterre (2022) show that meta-gradients of the discount with an inner critic collapse to a
myopic discount.

Same dynamics as bsuite's ``discounting_chain`` (and gymnax's port): reward when the step count
after the step equals ``k_c``; the observation is ``(context, step_count / 100)``.

:func:`true_value` is the exact value of a state under a policy, the analytic critic of the
paper's toy agent.
"""

from __future__ import annotations

from functools import cached_property
from typing import Tuple

import chex
import jax
import jax.numpy as jnp
from jumanji import specs
from jumanji.env import Environment
from jumanji.types import TimeStep, restart, termination, transition

from npigym.envs.machine.checks import is_int
from npigym.envs.toy.constants import (
    BASE_REWARD,
    BONUS,
    DEFAULT_MAPPING_SEED,
    EPISODE_LENGTH,
    NO_CONTEXT,
    NUM_ACTIONS,
    REWARD_STEPS,
)
from npigym.envs.toy.types import Observation, State


def context_rewards(mapping_seed: int = DEFAULT_MAPPING_SEED) -> jnp.ndarray:
    """(5,) the reward each context pays: 1.0, and 1.1 for context ``mapping_seed % 5``."""
    rewards = jnp.full((NUM_ACTIONS,), BASE_REWARD, jnp.float32)
    return rewards.at[mapping_seed % NUM_ACTIONS].add(BONUS)


class DiscountingChain(Environment[State, specs.DiscreteArray, Observation]):
    """bsuite's Discounting Chain (see the module docstring).

    Args:
        mapping_seed: the context paying 1.1 is ``mapping_seed % 5`` (default 3, ``k = 30``).
    """

    def __init__(self, mapping_seed: int = DEFAULT_MAPPING_SEED):
        if not is_int(mapping_seed):
            raise ValueError(f"mapping_seed must be an int, not {mapping_seed!r}")
        self.mapping_seed = int(mapping_seed)
        self.rewards = context_rewards(mapping_seed)
        self.reward_steps = jnp.asarray(REWARD_STEPS, jnp.int32)
        super().__init__()

    def __repr__(self) -> str:
        return f"DiscountingChain(mapping_seed={self.mapping_seed})"

    def _observation(self, state: State) -> Observation:
        return Observation(state.context,
                           state.step_count.astype(jnp.float32) / EPISODE_LENGTH)

    def reset(self, key: chex.PRNGKey) -> Tuple[State, TimeStep[Observation]]:
        state = State(context=jnp.asarray(NO_CONTEXT, jnp.int32),
                      step_count=jnp.zeros((), jnp.int32), key=key)
        return state, restart(self._observation(state))

    def step(self, state: State, action: chex.Array) -> Tuple[State, TimeStep[Observation]]:
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, NUM_ACTIONS - 1)
        context = jnp.where(state.step_count == 0, action, state.context)
        step_count = state.step_count + 1
        reward = jnp.where(step_count == self.reward_steps[context], self.rewards[context], 0.0)
        state = State(context=context, step_count=step_count, key=state.key)
        obs = self._observation(state)
        done = step_count >= EPISODE_LENGTH
        timestep = jax.lax.cond(done, lambda: termination(reward, obs),
                                lambda: transition(reward, obs))
        return state, timestep

    @cached_property
    def observation_spec(self) -> specs.Spec[Observation]:
        return specs.Spec(Observation, "ObservationSpec",
                          context=specs.BoundedArray((), jnp.int32, NO_CONTEXT, NUM_ACTIONS - 1,
                                                     "context"),
                          time=specs.BoundedArray((), jnp.float32, 0.0, 1.0, "time"))

    @cached_property
    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(NUM_ACTIONS, name="action")


def true_value(obs: Observation, probs: chex.Array, discount: chex.Numeric,
               mapping_seed: int = DEFAULT_MAPPING_SEED) -> chex.Array:
    """Exact value ``V^pi_gamma(s)`` of one Discounting Chain state (vmap for batches).

    Before the first action (context -1, step 0) the value averages the contexts under the
    policy: ``sum_c pi(c|s) r_c gamma**(k_c - 1)``. Once the context is known it is
    ``r_c gamma**(k_c - t - 1)`` if its reward is still ahead (``t < k_c``), else 0 (the
    terminal state included). The dynamics are deterministic, so with these values every
    one-step TD error after the first step is exactly 0.

    Gradients flow through ``probs`` and ``discount``; callers stop-gradient what they need
    (the paper's toy agent stop-gradients the discount inside its critic).

    Args:
        obs: one observation (scalar leaves).
        probs: (5,) the policy's action probabilities at ``obs`` (read at step 0 only).
        discount: the discount of the value.
        mapping_seed: the env's ``mapping_seed``.

    Returns:
        () float32 value.
    """
    chex.assert_shape(probs, (NUM_ACTIONS,))
    rewards = context_rewards(mapping_seed)
    k = jnp.asarray(REWARD_STEPS, jnp.float32)
    t = jnp.round(obs.time * EPISODE_LENGTH)
    discount = jnp.asarray(discount, jnp.float32)
    first = jnp.sum(probs * rewards * discount ** (k - 1.0))
    c = jnp.clip(obs.context, 0, NUM_ACTIONS - 1)
    # Clip the exponent so the untaken branch stays finite (gamma**negative at gamma=0).
    ahead = rewards[c] * discount ** jnp.maximum(k[c] - t - 1.0, 0.0)
    later = jnp.where(t < k[c], ahead, 0.0)
    return jnp.where(obs.context == NO_CONTEXT, first, later)
