"""benchmarks/random_policy_addition.py: playing the random policy to the end of episodes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import random_policy_addition

import npigym


def test_play__episodes_end_once_and_returns_count_right_columns() -> None:
    env = npigym.make("Addition-v0", modes="flat", min_digits=2, max_digits=2, reward="dense")
    out = random_policy_addition.play(env, env, episodes=64, max_steps=200)
    assert out["ended"].all()  # the step limit (2 * (14 * 3 + 1) = 86) ends every episode
    assert (out["length"] >= 1).all() and (out["length"] <= 86).all()
    # Dense progress pays 1/2 per column right, and undoing a column takes it back.
    columns = out["ret"] * 2
    np.testing.assert_allclose(columns, np.rint(columns), atol=1e-5)
    assert not out["success"].any()  # nobody adds two columns and returns at random
