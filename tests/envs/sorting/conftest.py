"""Fixtures of the sorting tests: envs over fixed arrays and their compiled functions, shared by
the modules (each env compiles once per session)."""

from __future__ import annotations

import jax
import pytest

import npigym
from npigym.envs.sorting import ArrayGenerator, Sorting

# The fixed instances: the pinned trace's array, the semantics tests' array, short arrays and ties.
FIXED_ARRAYS = ([3, 1, 2, 0], [2, 0, 1, 3], [0], [1, 0], [0, 0], [2, 2, 1])
MAX_ARRAYS = ([9, 2, 7, 1], [4], [3, 3], [0, 5, 5, 1, 5], [8, 7, 6, 5, 4, 3, 2, 1])


@pytest.fixture(scope="session")
def fixed_env() -> Sorting:
    """Sorting-v0 over ``FIXED_ARRAYS`` (pick one with ``expert_runner.key_for``)."""
    return Sorting(generator=ArrayGenerator(FIXED_ARRAYS), invalid_action_penalty=0.5)


@pytest.fixture(scope="session")
def fixed_jitted(fixed_env):
    """Jitted reset, step and expert_action of ``fixed_env``."""
    return jax.jit(fixed_env.reset), jax.jit(fixed_env.step), jax.jit(fixed_env.expert_action)


@pytest.fixture(scope="session")
def max_env():
    """Max-v0 in its default posing (BUBBLESORT and RSHIFT builtin) over ``MAX_ARRAYS``."""
    return npigym.make("Max-v0", generator=ArrayGenerator(MAX_ARRAYS))


@pytest.fixture(scope="session")
def max_jitted(max_env):
    return jax.jit(max_env.reset), jax.jit(max_env.step), jax.jit(max_env.expert_action)
