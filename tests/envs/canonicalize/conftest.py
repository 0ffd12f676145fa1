"""Fixtures of the canonicalization tests: envs and compiled functions shared by modules."""

from __future__ import annotations

import chex
import jax
import pytest

from npigym.envs.canonicalize import Canonicalize, Problem
from tests.envs.canonicalize.helpers import IMAGE, ProblemEnv


@pytest.fixture(scope="session")
def default_env() -> Canonicalize:
    return Canonicalize(image_size=IMAGE)


@pytest.fixture(scope="session")
def default_jitted(default_env):
    """Jitted reset / step / expert of ``default_env``, shared by the test modules; reset and
    step fail if they are ever traced twice."""
    return (jax.jit(chex.assert_max_traces(default_env.reset, n=1)),
            jax.jit(chex.assert_max_traces(default_env.step, n=1)),
            jax.jit(default_env.expert_action))


# The fixed instances the trace and semantics tests start from (degrees).
PROBLEMS = (
    Problem(-45, 45),  # 0: the pinned trace: 3 right, 2 down
    Problem(0, 15),  # 1: already at the target
    Problem(30, 15),  # 2: 2 left
    Problem(15, 60),  # 3
    Problem(0, 60),  # 4: at the upper elevation bound
    Problem(15, 15),  # 5
    Problem(0, 0),  # 6
    Problem(15, 0),  # 7
    Problem(0, 15, 180, 15),  # 8: a half turn
)


@pytest.fixture(scope="session")
def problem_env() -> ProblemEnv:
    """Hierarchical, dense reward, full observation, 8 x 8 images, over ``PROBLEMS``."""
    return ProblemEnv(PROBLEMS, image_size=8, reward="dense", observation="full")


@pytest.fixture(scope="session")
def flat_problem_env() -> ProblemEnv:
    """Flat (GOTO calls ACT), dense reward, invalid actions cost 0.5, over ``PROBLEMS``."""
    return ProblemEnv(PROBLEMS, image_size=8, reward="dense", modes="flat",
                      invalid_action_penalty=0.5)
