"""Fixtures of the KthLargest tests: envs and their compiled functions, each compiled once per
session, and helpers to run the expert over a batch."""

from __future__ import annotations

from typing import Any, Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from npigym.envs.kth_largest import KthLargest
from npigym.envs.sorting import ArrayGenerator

# Fixed instances for the hand-played tests: (array, k) pairs are found by key (``key_for``).
FIXED_ARRAYS = ([9, 2, 7, 1], [4], [3, 3], [0, 5, 5, 1, 5], [8, 7, 6, 5, 4, 3, 2, 1])


def jitted(env):
    """Jitted, vmapped reset, step and expert_action of ``env``."""
    return (jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step)),
            jax.jit(jax.vmap(env.expert_action)))


def run_expert(env, fns, keys) -> Dict[str, np.ndarray]:
    """The expert's episodes from ``keys`` (batched): first and last task states, whether each
    succeeded, whether every RETURN's postcondition held, the agent steps taken and the
    decisions bound skills took."""
    reset, step, expert = fns
    state, timestep = reset(keys)
    first = jax.tree.map(np.asarray, state.task)
    batch = keys.shape[0]
    done = np.zeros(batch, bool)
    success = np.zeros(batch, bool)
    posts_hold = np.ones(batch, bool)
    steps = np.zeros(batch, int)
    skill_steps = np.zeros(batch, int)
    while not done.all():
        state, timestep = step(state, expert(state))
        ts = jax.tree.map(np.asarray, timestep)
        live = ~done
        returned = live & (ts.extras["returned_program"] >= 0)
        posts_hold &= ~returned | ts.extras["postcondition"]
        steps += live
        skill_steps += np.where(live, ts.extras.get("skill_steps", 0), 0)
        last = live & (ts.step_type == 2)
        success |= last & ts.extras["success"]
        done |= last
    return dict(first=first, last=jax.tree.map(np.asarray, state.task), success=success,
                posts_hold=posts_hold, steps=steps, skill_steps=skill_steps)


def kth_largest(values: Sequence[int], k: int) -> int:
    return sorted(values)[len(values) - k]


_DRAWS: Dict[int, Any] = {}  # env id -> (keys, pads): each env's generator runs once


def key_for(env, array: Sequence[int], k: int, tries: int = 2000) -> jax.Array:
    """A key for which ``env``'s generator (an ``ArrayGenerator`` with random k) draws
    ``array`` and ``k``: tests share one env, hence one compile, across instances."""
    if id(env) not in _DRAWS:
        keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(tries))
        _DRAWS[id(env)] = keys, jax.tree.map(np.asarray, jax.jit(jax.vmap(env.generator))(keys))
    keys, pads = _DRAWS[id(env)]
    for i in range(tries):
        n = int(pads.length[i])
        if (pads.cells[i, :n].astype(int) - 1).tolist() == list(array) and pads.k[i] == k:
            return keys[i]
    raise AssertionError(f"no key among {tries} draws {list(array)} with k={k}")


@pytest.fixture(scope="session")
def small_env() -> KthLargest:
    """KthLargest-v0's default posing, arrays of 2-6 digits, k random."""
    return KthLargest(min_length=2, max_length=6)


@pytest.fixture(scope="session")
def small_fns(small_env):
    return jitted(small_env)


@pytest.fixture(scope="session")
def fixed_env() -> KthLargest:
    """The default posing over ``FIXED_ARRAYS`` with random k and the full observation."""
    return KthLargest(generator=ArrayGenerator(FIXED_ARRAYS), observation="full")


@pytest.fixture(scope="session")
def fixed_fns(fixed_env):
    """Unbatched jitted reset, step and expert_action of ``fixed_env``."""
    return jax.jit(fixed_env.reset), jax.jit(fixed_env.step), jax.jit(fixed_env.expert_action)
