"""Tests of DmEnvWrapper: dm_env's own contract tests, then its episode semantics."""

from __future__ import annotations

import unittest

import dm_env
import numpy as np
import pytest
import tree
from dm_env import test_utils
from jumanji.testing.fakes import FakeEnvironment

import npigym
from npigym.envs.machine.library import RETURN_ID
from npigym.wrappers import DmEnvWrapper

ENV = npigym.make("Addition-v0", max_digits=3)
MASKED = np.array([7, 0, 0, 0], np.int32)  # RSHIFT: not callable from ADD, so a no-op


class DmEnvContractTest(test_utils.EnvironmentTestMixin, unittest.TestCase):
    """dm_env's contract. Its default action is the spec's minimum, (RETURN, 0, 0, 0), which
    ends every episode at once: the FIRST-after-LAST rule is exercised too."""

    def make_object_under_test(self):
        return DmEnvWrapper(ENV, seed=0)

    def make_action_sequence(self):
        for i in range(12):
            yield MASKED if i % 3 else np.array([RETURN_ID, 0, 0, 0], np.int32)


@pytest.fixture(scope="module")
def env():
    return DmEnvWrapper(ENV, seed=0)


def assert_conforms(value, spec):
    tree.assert_same_structure(value, spec)
    tree.map_structure(lambda v, s: s.validate(v), value, spec)


def test_specs_leave_out_the_missing_full_view(env):
    assert set(env.observation_spec()) == {"program", "args", "depth", "action_mask", "local"}
    assert env.action_spec().shape == (4,)
    np.testing.assert_array_equal(env.action_spec().maximum, [7, 3, 9, 0])


def test_full_view_is_a_nested_dict():
    spec = DmEnvWrapper(npigym.make("Addition-v0", max_digits=3, observation="full"))
    assert set(spec.observation_spec()["full"]) == {"pad", "pointers"}


def test_episode_semantics(env):
    first = env.reset()
    assert first.first() and first.reward is None and first.discount is None
    assert_conforms(first.observation, env.observation_spec())
    assert all(isinstance(v, np.ndarray) for v in first.observation.values())

    mid = env.step(MASKED)
    assert mid.mid() and mid.reward == 0.0 and mid.discount == 1.0
    assert env.extras["invalid_action"]
    assert_conforms(mid.reward, env.reward_spec())
    assert_conforms(mid.discount, env.discount_spec())

    last = env.step([RETURN_ID, 0, 0, 0])  # a list of ints is fine
    assert last.last() and last.discount == 0.0 and not env.extras["success"]
    # After LAST, step starts a new episode and ignores the action.
    again = env.step([RETURN_ID, 0, 0, 0])
    assert again.first() and again.reward is None
    assert env.step(MASKED).mid()


def test_step_limit_is_a_last_step_with_discount_one():
    env = DmEnvWrapper(npigym.make("Addition-v0", max_digits=3, time_limit=2))
    assert env.step(MASKED).first()  # a fresh env starts an episode
    assert env.step(MASKED).mid()
    last = env.step(MASKED)
    assert last.last() and last.discount == 1.0
    assert env.step(MASKED).first()


def test_invalid_actions_raise(env):
    env.reset()
    for bad in ([8, 0, 0, 0], [0, 0, 0], [0.5, 0, 0, 0], [-1, 0, 0, 0]):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(bad)


def test_seeds_fix_the_episode_sequence():
    def firsts(seed, n=4):
        env = DmEnvWrapper(ENV, seed=seed)
        pads = []
        for _ in range(n):
            env.reset()
            pads.append(np.asarray(env.state.task.pad))
        return np.stack(pads)

    np.testing.assert_array_equal(firsts(7), firsts(7))
    assert not np.array_equal(firsts(7), firsts(8))


def test_plain_jumanji_env():
    # Jumanji's own test env: a flat float observation (spec dtype float64, data float32 with
    # x64 off), a continuous action, termination at the time limit.
    env = DmEnvWrapper(FakeEnvironment(time_limit=2), seed=0)
    assert isinstance(env.observation_spec(), dm_env.specs.Array)
    timestep = env.reset()
    assert_conforms(timestep.observation, env.observation_spec())
    action = env.action_spec().generate_value()
    timestep = env.step(action)
    assert timestep.mid() and timestep.observation == 1.0
    assert_conforms(timestep.reward, env.reward_spec())
    timestep = env.step(action)
    assert timestep.last() and timestep.discount == 0.0
    assert env.step(action).first()
