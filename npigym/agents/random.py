"""A uniformly random *valid* policy, for program-machine envs and any Jumanji env with a mask.

The policy draws one 32-bit word and expands it with an integer hash, so it costs a handful of
integer ops per environment: cheap enough that throughput benchmarks measure the env, not the
sampler (two ``jax.random.categorical`` draws cost 4x a whole Addition step under vmap).
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji import specs

from npigym.envs.machine.generator import hash_stream, seed_word
from npigym.envs.machine.library import NUM_ARGS

Policy = Callable[[chex.PRNGKey, Any], chex.Array]


def masked_choice(word: chex.Array, mask: chex.Array) -> chex.Array:
    """A uniformly random index among the True entries of ``mask`` (index 0 if none).

    Each entry gets a hashed random priority and the highest valid one wins: elementwise work
    and one argmax (a cumulative count of the mask lowers to a slow reduce-window on CPU).
    """
    chex.assert_rank(mask, 1)
    priority = hash_stream(word, jnp.arange(mask.shape[0])) | jnp.uint32(1)
    return jnp.argmax(jnp.where(mask, priority, jnp.uint32(0))).astype(jnp.int32)


def _allowed_values(library) -> tuple[np.ndarray, np.ndarray]:
    """For each (program, slot): the allowed values, packed to the front, and how many."""
    valid = library.arg_valid
    allowed = np.zeros(valid.shape, np.int32)
    for p in range(valid.shape[0]):
        for s in range(NUM_ARGS):
            values = np.flatnonzero(valid[p, s])
            allowed[p, s, : len(values)] = values
    return allowed, np.maximum(valid.sum(-1), 1).astype(np.uint32)


def program_action_from_word(env, word: chex.Array, observation) -> chex.Array:
    """A valid ``(program, arg0, arg1, arg2)`` for a program-machine env from one uint32."""
    allowed, count = _allowed_values(env.library)
    program = masked_choice(word, observation.action_mask)
    words = hash_stream(word ^ jnp.uint32(0x68E31DA4), jnp.arange(NUM_ARGS))
    # Multiply-shift of the top 16 bits instead of ``words % count``: x86 has no SIMD integer
    # division (relative bias below count / 65536).
    index = ((words >> 16) * jnp.asarray(count)[program] >> 16).astype(jnp.int32)
    # One flat gather: a 3-D one, with its index vector assembled per element, cost 3x more.
    flat = (program * NUM_ARGS + jnp.arange(NUM_ARGS)) * allowed.shape[-1] + index
    args = jnp.asarray(allowed.reshape(-1))[flat]
    return jnp.concatenate([program[None], args]).astype(jnp.int32)


def make_random_policy(env) -> Policy:
    """``policy(key, observation) -> action``, uniform over valid actions (pure, vmappable).

    For program-machine envs: a program among ``observation.action_mask``, then each argument
    uniform over the values that program allows. (The task may still reject a primitive in some
    states, e.g. a move off the pad; that is a documented no-op, not a masked action.) For
    other Jumanji envs: uniform among the mask's True entries when the observation has an
    ``action_mask`` and the action is discrete, else uniform over the action spec's bounds.
    """
    unwrapped = getattr(env, "unwrapped", env)
    if hasattr(unwrapped, "library"):
        def policy(key, observation):
            return program_action_from_word(unwrapped, seed_word(key), observation)
        return policy

    action_spec = env.action_spec
    if isinstance(action_spec, specs.DiscreteArray):
        n = int(action_spec.num_values)

        def policy(key, observation):
            mask = getattr(observation, "action_mask", None)
            mask = jnp.ones((n,), bool) if mask is None else mask.reshape(-1)
            return masked_choice(seed_word(key), mask)
        return policy
    if isinstance(action_spec, specs.BoundedArray):
        low = np.asarray(action_spec.minimum)
        high = np.asarray(action_spec.maximum)
        if not np.issubdtype(action_spec.dtype, np.integer):
            def policy(key, observation):
                return jax.random.uniform(key, action_spec.shape, action_spec.dtype, low, high)
            return policy

        def policy(key, observation):
            size = int(np.prod(action_spec.shape))
            words = hash_stream(seed_word(key), jnp.arange(size)).reshape(action_spec.shape)
            span = (jnp.asarray(high) - jnp.asarray(low) + 1).astype(jnp.uint32)
            return (jnp.asarray(low) + (words % span).astype(jnp.int32)).astype(action_spec.dtype)
        return policy
    raise TypeError(f"no random policy for action spec {action_spec!r}")
