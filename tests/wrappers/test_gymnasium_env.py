"""Tests of the gymnasium adapters: GymnasiumEnv, GymnasiumVectorEnv and their registration."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import gymnasium
import jax
import jumanji
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from jumanji.testing.fakes import FakeEnvironment

import npigym
from npigym.envs.machine.library import RETURN_ID
from npigym.wrappers import GymnasiumEnv, GymnasiumVectorEnv, make_gymnasium_vector_env

# Nothing may warn (the spaces used to hold a 0..0 Box, which the checker flagged).
EXPECTED_WARNINGS = ()
ROOT = npigym.make("Addition-v0").library.root  # ADD


def unexpected_warnings(record):
    return [str(w.message) for w in record
            if not any(expected in str(w.message) for expected in EXPECTED_WARNINGS)]


@pytest.fixture(scope="module")
def gym_env():
    env = gymnasium.make("npigym/Addition-v0", max_digits=3)
    yield env
    env.close()


@pytest.fixture(scope="module")
def adapter(gym_env):
    return gym_env.unwrapped


@pytest.fixture(scope="module")
def expert_action(adapter):
    return jax.jit(adapter.jumanji_env.expert_action)


# ------------------------------------------------------------------------------------------------
# check_env and make.
# ------------------------------------------------------------------------------------------------
def check_env_warnings(env, **kwargs):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        check_env(env, **kwargs)
    return unexpected_warnings(record)


def test_check_env_passes(adapter):
    assert check_env_warnings(adapter) == []  # with the render checks: a remake per mode


@pytest.mark.parametrize("env_id, kwargs", [
    ("Addition-v0", {"observation": "full"}),
    ("Addition-flat-v0", {}),
    ("Addition-macro-v0", {}),
])
def test_check_env_passes_on_variants(env_id, kwargs):
    env = gymnasium.make(f"npigym/{env_id}", max_digits=3, **kwargs).unwrapped
    assert check_env_warnings(env, skip_render_check=True, skip_close_check=True) == []


def test_check_env_passes_on_a_plain_jumanji_env():
    env = GymnasiumEnv(jumanji.make("Snake-v1"))
    assert env.action_space == spaces.Discrete(4)
    assert env.metadata["render_modes"] == ["rgb_array"]
    # Its step counter is a DiscreteArray: an integer scalar, so Discrete (an int64 scalar).
    assert env.observation_space["step_count"] == spaces.Discrete(4000)
    assert env.observation_space["action_mask"] == spaces.Box(0, 1, (4,), np.bool_)
    assert check_env_warnings(env, skip_render_check=True) == []


def test_check_env_passes_on_a_flat_observation():
    # Jumanji's test env: one float observation array (a Box, not a Dict), continuous actions;
    # its 0-d float arrives with shape (1,): no space is 0-dimensional.
    env = GymnasiumEnv(FakeEnvironment(time_limit=5))
    assert env.observation_space == spaces.Box(-np.inf, np.inf, (1,), np.float32)
    assert isinstance(env.action_space, spaces.Box)
    remaining = check_env_warnings(env, skip_render_check=True)
    # Its spec is an unbounded Array, so the Box is too, which the checker points out.
    assert [w for w in remaining if "infinity" not in w] == []


def test_make_gives_the_standard_wrapper_stack(gym_env, adapter):
    assert isinstance(adapter, GymnasiumEnv)
    assert adapter.unwrapped is adapter
    assert gym_env.spec.id == "npigym/Addition-v0"
    assert gym_env.spec.kwargs == {"env_id": "Addition-v0", "max_digits": 3}
    assert isinstance(gym_env, gymnasium.wrappers.OrderEnforcing)
    assert adapter.jumanji_env.width == 3 + 4  # max_digits reached the env


def test_make_with_module_prefix_in_a_fresh_interpreter():
    code = textwrap.dedent("""
        import sys
        import gymnasium
        assert "npigym" not in sys.modules
        env = gymnasium.make("npigym:npigym/Addition-v0", max_digits=2)
        print(type(env.unwrapped).__name__, env.unwrapped.jumanji_env.width)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["GymnasiumEnv", "6"]


def test_make_errors_are_npigym_errors():
    with pytest.raises(TypeError, match="did you mean 'max_digits'"):
        gymnasium.make("npigym/Addition-v0", max_digitz=3)
    with pytest.raises(ValueError, match="max_digits must be a positive int"):
        gymnasium.make("npigym/Addition-v0", max_digits=0)
    with pytest.raises(npigym.UnknownEnvironmentError, match="Registered: "):
        gymnasium.make("npigym/Addition-v0", env_id="Adition-v0")
    with pytest.raises(ValueError, match="render_mode must be one of"):
        gymnasium.make("npigym/Addition-v0", max_digits=3, render_mode="human")


# ------------------------------------------------------------------------------------------------
# Spaces and values.
# ------------------------------------------------------------------------------------------------
def test_spaces(adapter):
    obs_space = adapter.observation_space
    assert set(obs_space) == {"program", "args", "depth", "action_mask", "local"}  # no `full`
    mask_space = obs_space["action_mask"]
    assert isinstance(mask_space, spaces.Box) and mask_space.dtype == np.bool_
    assert mask_space.shape == (8,) and mask_space.high.all() and not mask_space.low.any()
    assert obs_space["local"] == spaces.MultiDiscrete([12] * 4, dtype=np.int32)
    assert obs_space["program"] == spaces.Discrete(8)
    assert obs_space["depth"] == spaces.Discrete(3)
    assert obs_space["args"] == spaces.MultiDiscrete([4, 10, 1], dtype=np.int32)
    assert adapter.action_space == spaces.MultiDiscrete([8, 4, 10, 1])


def test_full_observation_space_is_flattened():
    # One level of keys (stable-baselines3 takes no nested Dict); bounded integer arrays are
    # 1-D MultiDiscretes.
    env = GymnasiumEnv(npigym.make("Addition-v0", max_digits=3, observation="full"))
    assert "full" not in env.observation_space.spaces
    assert env.observation_space["full/pad"] == spaces.MultiDiscrete([12] * 28, dtype=np.int8)
    assert env.observation_space["full/pointers"] == spaces.MultiDiscrete([7] * 4,
                                                                          dtype=np.int32)
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space and obs["full/pad"].shape == (28,)


def test_values_are_numpy_and_python_scalars(adapter):
    obs, info = adapter.reset(seed=0)
    assert obs in adapter.observation_space
    for key, value in obs.items():
        if isinstance(adapter.observation_space[key], spaces.Discrete):
            assert type(value) is np.int64, key  # what gymnasium's checker wants
            continue
        assert isinstance(value, np.ndarray) and value.flags.writeable, key
        assert value.dtype == adapter.observation_space[key].dtype, key
    assert set(info) == {"invalid_action", "returned_program", "postcondition", "success",
                         "primitive_steps"}
    assert type(info["success"]) is bool and type(info["returned_program"]) is int
    obs, reward, terminated, truncated, info = adapter.step(np.array([7, 0, 0, 0]))
    assert type(reward) is float
    assert type(terminated) is bool and type(truncated) is bool


# ------------------------------------------------------------------------------------------------
# Episodes.
# ------------------------------------------------------------------------------------------------
def test_expert_episode_terminates_with_success(adapter, expert_action):
    adapter.reset(seed=3)
    for _ in range(200):
        action = np.asarray(expert_action(adapter.state))
        _, reward, terminated, truncated, info = adapter.step(action)
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert reward == 1.0 and info["success"]
    with pytest.raises(ResetNeeded, match="episode has ended"):
        adapter.step(action)


def test_root_return_terminates_without_success(adapter):
    adapter.reset(seed=0)
    _, reward, terminated, truncated, info = adapter.step([RETURN_ID, 0, 0, 0])
    assert (terminated, truncated, reward, info["success"]) == (True, False, 0.0, False)


def test_step_limit_truncates(adapter):
    adapter.reset(seed=0)
    masked = [7, 0, 0, 0]  # RSHIFT: not callable from ADD, so a no-op that still counts
    limit = int(adapter.state.step_limit)
    for _ in range(limit - 1):
        assert adapter.step(masked)[2:4] == (False, False)
    assert adapter.step(masked)[2:4] == (False, True)
    with pytest.raises(ResetNeeded, match="episode has ended"):
        adapter.step(masked)
    adapter.reset()
    assert adapter.step(masked)[2:4] == (False, False)


def test_step_before_reset_raises():
    env = GymnasiumEnv(npigym.make("Addition-v0", max_digits=3))
    with pytest.raises(ResetNeeded, match=r"before calling env\.reset"):
        env.step([RETURN_ID, 0, 0, 0])
    with pytest.raises(ResetNeeded):
        GymnasiumEnv(env.jumanji_env, render_mode="ansi").render()


def test_actions_outside_the_space_raise(adapter):
    obs, _ = adapter.reset(seed=0)
    for bad in ([8, 0, 0, 0], [0, 0, 0, 1], [-1, 0, 0, 0], [0, 0, 0], np.array([1.0, 0, 0, 0]),
                "ADD1"):
        with pytest.raises(ValueError, match="not in the action space"):
            adapter.step(bad)
    # In the space but masked: the env's no-op, flagged in info.
    assert not obs["action_mask"][7]
    next_obs, reward, terminated, _, info = adapter.step(np.array([7, 0, 0, 0], np.int32))
    assert info["invalid_action"] and not terminated and reward == 0.0
    for key in obs:
        np.testing.assert_array_equal(next_obs[key], obs[key])


def test_equal_seeds_give_equal_episodes(adapter):
    def episode(seed):
        adapter.reset(seed=seed)
        rng = np.random.default_rng(0)
        pads = [np.asarray(adapter.state.task.pad)]
        for _ in range(6):
            mask = adapter.step(rng.integers([8, 4, 10, 1]))[0]["action_mask"]
            pads.append(np.asarray(adapter.state.task.pad))
            if not mask.any():
                break
        return np.stack(pads)

    np.testing.assert_array_equal(episode(11), episode(11))
    firsts = {episode(seed)[0].tobytes() for seed in range(5)}
    assert len(firsts) > 1
    # Unseeded resets continue the seeded generator.
    adapter.reset(seed=11)
    a = adapter.reset()[0]
    adapter.reset(seed=11)
    b = adapter.reset()[0]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_reset_and_step_compile_once(adapter):
    adapter.reset(seed=0)
    adapter.step([7, 0, 0, 0])
    adapter.step(np.array([7, 0, 0, 0], np.int64))
    adapter.reset(seed=1)
    adapter.step((7, 0, 0, 0))
    assert adapter._reset._cache_size() == 1
    assert adapter._step._cache_size() == 1


def test_render(adapter, monkeypatch):
    adapter.reset(seed=0)
    with pytest.warns(UserWarning, match="without a render_mode"):
        assert adapter.render() is None
    monkeypatch.setattr(adapter, "render_mode", "ansi")
    text = adapter.render()
    assert isinstance(text, str) and "ADD" in text
    monkeypatch.setattr(adapter, "render_mode", "rgb_array")
    image = adapter.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    assert adapter.metadata["render_modes"] == ["ansi", "rgb_array"]
    assert adapter.metadata["render_fps"] > 0


# ------------------------------------------------------------------------------------------------
# The vector env.
# ------------------------------------------------------------------------------------------------
NUM_ENVS = 8


@pytest.fixture(scope="module")
def vec_env():
    env = gymnasium.make_vec("npigym/Addition-v0", num_envs=NUM_ENVS, max_digits=3, time_limit=8)
    yield env
    env.close()


def random_valid_actions(rng, obs):
    """A program among each env's action mask, arguments uniform over their ranges."""
    mask = obs["action_mask"]
    programs = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
    args = rng.integers([4, 10, 1], size=(len(mask), 3))
    return np.column_stack([programs, args])


def test_make_vec_returns_the_batched_env(vec_env):
    assert isinstance(vec_env, GymnasiumVectorEnv)
    assert vec_env.num_envs == NUM_ENVS
    assert vec_env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert vec_env.single_action_space == spaces.MultiDiscrete([8, 4, 10, 1])
    assert vec_env.action_space.shape == (NUM_ENVS, 4)
    assert vec_env.observation_space == gymnasium.vector.utils.batch_space(
        vec_env.single_observation_space, NUM_ENVS)
    assert vec_env.spec.id == "npigym/Addition-v0"


def test_vector_episodes(vec_env):
    rng = np.random.default_rng(0)
    obs, info = vec_env.reset(seed=0)
    assert obs in vec_env.observation_space
    assert info["success"].shape == (NUM_ENVS,) and info["_success"].all()
    terminations = truncations = 0
    for _ in range(64):
        obs, reward, terminated, truncated, info = vec_env.step(random_valid_actions(rng, obs))
        assert obs in vec_env.observation_space
        assert reward.shape == terminated.shape == truncated.shape == (NUM_ENVS,)
        assert not (terminated & truncated).any()
        done = terminated | truncated
        assert ("final_obs" in info) == done.any()
        if done.any():
            np.testing.assert_array_equal(info["_final_obs"], done)
            assert set(info["final_obs"]) == set(obs)
            # Finished envs already show their next episode's first observation.
            assert (obs["depth"][done] == 0).all() and (obs["program"][done] == ROOT).all()
            # A root RETURN ends the episode from depth 0, with ADD as the current program.
            assert (info["final_obs"]["program"][terminated] == ROOT).all()
            assert (info["returned_program"][terminated] == ROOT).all()
        terminations += terminated.sum()
        truncations += truncated.sum()
    assert terminations > 0 and truncations > 0
    assert vec_env.unwrapped._step._cache_size() == 1


def test_vector_seeding_is_deterministic(vec_env):
    def rollout(seed):
        rng = np.random.default_rng(1)
        obs, _ = vec_env.reset(seed=seed)
        trace = [obs["local"]]
        for _ in range(12):
            obs, reward, terminated, truncated, _ = vec_env.step(random_valid_actions(rng, obs))
            trace += [obs["local"], reward, terminated, truncated]
        return trace

    first, again, other = rollout(5), rollout(5), rollout(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_vector_render(vec_env, monkeypatch):
    vec_env.reset(seed=0)
    monkeypatch.setattr(vec_env.unwrapped, "render_mode", "ansi")
    frames = vec_env.render()
    assert len(frames) == NUM_ENVS and all(isinstance(f, str) for f in frames)


def test_vector_errors(vec_env):
    vec_env.reset(seed=0)
    with pytest.raises(ValueError, match="not in the action space"):
        vec_env.step(np.full((NUM_ENVS, 4), 9))
    with pytest.raises(ValueError, match="not in the action space"):
        vec_env.step(np.zeros((NUM_ENVS - 1, 4), int))
    fresh = GymnasiumVectorEnv(npigym.make("Addition-v0", max_digits=3), num_envs=2)
    with pytest.raises(ResetNeeded):
        fresh.step(np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="num_envs"):
        GymnasiumVectorEnv(npigym.make("Addition-v0", max_digits=3), num_envs=0)
    with pytest.raises(ValueError, match="time_limit"):
        make_gymnasium_vector_env("Addition-v0", num_envs=2, max_episode_steps=10)
    with pytest.raises(TypeError, match="did you mean 'max_digits'"):
        gymnasium.make_vec("npigym/Addition-v0", num_envs=2, max_digit=3)


def test_sync_vectorization_mode_uses_the_single_env_entry_point():
    env = gymnasium.make_vec("npigym/Addition-v0", num_envs=2, vectorization_mode="sync",
                             max_digits=3)
    assert isinstance(env, gymnasium.vector.SyncVectorEnv)
    obs, _ = env.reset(seed=0)
    assert obs["local"].shape == (2, 4) and obs in env.observation_space
    # Env 0 returns from the root (terminates); SyncVectorEnv then resets it (NEXT_STEP).
    actions = np.array([[RETURN_ID, 0, 0, 0], [7, 0, 0, 0]])
    _, reward, terminated, truncated, _ = env.step(actions)
    assert terminated.tolist() == [True, False] and not truncated.any()
    obs, reward, terminated, truncated, _ = env.step(actions)
    assert terminated.tolist() == [False, False] and reward.shape == (2,)
    env.close()
