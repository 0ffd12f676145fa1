"""External RL code on our envs: action masks, the checkers over every id, sb3-contrib's
MaskablePPO, jumanji's and dm_env's adapters, and gymnax-API (PureJaxRL-style) code.

stable-baselines3 / sb3-contrib come with the ``external`` extra (``pip install -e .[dev]``);
their tests skip without it.
"""

from __future__ import annotations

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tree
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import npigym
from npigym.envs.machine.library import RETURN_ID
from npigym.wrappers import DmEnvWrapper, GymnasiumEnv
from npigym.wrappers.gymnasium_env import flat_action_table
from npigym.wrappers.gymnax import Box, Discrete, GymnaxEnv

IDS = npigym.registered_environments()
# Small instances where a knob allows it: the checks are about interfaces, not sizes.
SMALL = {"Canonicalize": {"image_size": 8}}


def small_kwargs(env_id):
    return next((v for k, v in SMALL.items() if env_id.startswith(k)), {})


@pytest.fixture(scope="module")
def addition():
    return npigym.make("Addition-v0", max_digits=3)


@pytest.fixture(scope="module")
def flat_env(addition):
    return GymnasiumEnv(addition, flat_actions=True)


@pytest.fixture(scope="module")
def multi_env(addition):
    return GymnasiumEnv(addition)


# ------------------------------------------------------------------------------------------------
# Masks.
# ------------------------------------------------------------------------------------------------
def invalid_flags(env, table):
    """``f(state) -> (N,)`` whether each row of ``table`` is an invalid action in ``state``."""
    step = jax.jit(jax.vmap(env.step, in_axes=(None, 0)))
    return lambda state: np.asarray(step(state, jnp.asarray(table))[1].extras["invalid_action"])


@pytest.mark.parametrize("env_id, kwargs", [("Addition-v0", {"max_digits": 3}),
                                            ("Sorting-v0", {"max_length": 4})])
def test_flat_mask_is_exact(env_id, kwargs):
    # True exactly for the calls that the step would not flag invalid, along a masked random
    # rollout (pointers at the edges included: Sorting rejects moving off the array).
    env = npigym.make(env_id, **kwargs)
    gym_env = GymnasiumEnv(env, flat_actions=True)
    invalid = invalid_flags(env, gym_env.flat_action_table)
    programs = gym_env.flat_action_table[:, 0]
    rng = np.random.default_rng(0)
    obs, _ = gym_env.reset(seed=0)
    rejected_by_the_task = 0
    for _ in range(60):
        mask = gym_env.action_masks()
        np.testing.assert_array_equal(mask, ~invalid(gym_env.state))
        rejected_by_the_task += int(np.sum(obs["action_mask"][programs] & ~mask))
        obs, _, terminated, truncated, info = gym_env.step(rng.choice(np.flatnonzero(mask)))
        assert not info["invalid_action"]
        if terminated or truncated:
            obs, _ = gym_env.reset()
    assert rejected_by_the_task > 0  # the mask covers the task's checks, not only the stack's


def test_flat_action_table(flat_env, addition):
    table = flat_env.flat_action_table
    assert flat_env.action_space == spaces.Discrete(len(table))
    lib = addition.library
    assert lib.root not in table[:, 0]  # nobody calls ADD
    assert RETURN_ID in table[:, 0]
    for p, *args in table:
        for s, a in enumerate(args):
            assert lib.arg_valid[p, s, a]
            if s >= lib.num_args[p]:
                assert a == 0
    assert len({tuple(r) for r in table}) == len(table)


def test_per_dimension_masks(multi_env):
    obs, _ = multi_env.reset(seed=0)
    nvec = multi_env.action_space.nvec
    mask = multi_env.action_masks()
    assert mask.shape == (int(nvec.sum()),) and mask.dtype == np.bool_
    np.testing.assert_array_equal(mask[: nvec[0]], obs["action_mask"])
    # Each dimension keeps at least one value (a categorical needs one).
    for part in np.split(mask, np.cumsum(nvec)[:-1]):
        assert part.any()
    # Drawing each dimension from its mask never calls a masked program.
    rng = np.random.default_rng(1)
    for _ in range(30):
        parts = np.split(multi_env.action_masks(), np.cumsum(nvec)[:-1])
        action = np.array([rng.choice(np.flatnonzero(p)) for p in parts])
        assert obs["action_mask"][action[0]]
        obs, _, terminated, truncated, _ = multi_env.step(action)
        if terminated or truncated:
            obs, _ = multi_env.reset()


def test_masks_need_a_reset():
    env = GymnasiumEnv(npigym.make("Addition-v0", max_digits=2), flat_actions=True)
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.action_masks()


def test_flat_actions_through_gymnasium_make_and_vector():
    env = gymnasium.make("npigym/Addition-v0", max_digits=2, flat_actions=True)
    assert isinstance(env.action_space, spaces.Discrete)
    assert env.unwrapped.flat_action_table.shape[1] == 4
    vec = gymnasium.make_vec("npigym/Addition-v0", num_envs=3, max_digits=2, flat_actions=True)
    vec.reset(seed=0)
    masks = vec.unwrapped.action_masks()
    assert masks.shape == (3, env.action_space.n)
    actions = np.array([np.flatnonzero(m)[0] for m in masks])
    _, _, _, _, infos = vec.step(actions)
    assert not infos["invalid_action"].any()
    with pytest.raises(ValueError, match="not in the action space"):
        vec.step(np.full(3, env.action_space.n))
    vec.close()


def test_flat_actions_on_other_envs():
    # Discrete actions are flat already; only program machines have calls to enumerate.
    chain = npigym.make("DiscountingChain-v0")
    env = GymnasiumEnv(chain, flat_actions=True)
    assert env.action_space == spaces.Discrete(5) and env.flat_action_table is None
    env.reset(seed=0)
    np.testing.assert_array_equal(env.action_masks(), np.ones(5, bool))
    with pytest.raises(ValueError, match="program machine"):
        flat_action_table(chain)


# ------------------------------------------------------------------------------------------------
# Checkers over every id.
# ------------------------------------------------------------------------------------------------
# Flat actions change only the action space: checked on a few ids (each posing compiles anew).
FLAT_CHECKED = ("Addition-macro-v0", "Sorting-v0", "DiscountingChain-v0")


@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass_on_every_id(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    jumanji_env = npigym.make(env_id, **small_kwargs(env_id))
    for flat in (False, True) if env_id in FLAT_CHECKED else (False,):
        env = GymnasiumEnv(jumanji_env, flat_actions=flat)
        for space in env.observation_space.values():
            assert space.shape != () or isinstance(space, spaces.Discrete)
            assert not isinstance(space, spaces.Dict)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            check_env(env, skip_render_check=True, skip_close_check=True)
            sb3_checker.check_env(env)
        messages = [str(w.message) for w in record
                    if "gymnasium" in w.filename or "stable_baselines3" in w.filename]
        # 8 x 8 images are below SB3's CNN minimum (36 x 36), which its checker points out.
        assert [m for m in messages if "minimal resolution" not in m] == [], messages


# ------------------------------------------------------------------------------------------------
# sb3-contrib's MaskablePPO.
# ------------------------------------------------------------------------------------------------
def test_maskable_ppo_trains_on_addition():
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("npigym/Addition-v0", n_envs=4, seed=0,
                        env_kwargs={"flat_actions": True, "modes": "macro", "max_digits": 2})
    model = sb3_contrib.MaskablePPO("MultiInputPolicy", venv, n_steps=128, batch_size=256,
                                    n_epochs=1, seed=0, device="cpu")
    model.learn(1024)
    assert model.num_timesteps >= 1024
    obs = venv.reset()
    space = venv.observation_space
    finished = 0
    for _ in range(100):
        masks = get_action_masks(venv)
        action, _ = model.predict(obs, action_masks=masks)
        assert masks[np.arange(4), action].all()  # the policy honours the masks
        obs, reward, done, infos = venv.step(action)
        for i, info in enumerate(infos):
            assert not info["invalid_action"]
            assert reward[i] in (0.0, 1.0) and (reward[i] == 1.0) == info["success"]
            if done[i]:
                finished += 1
                final = info["terminal_observation"]
                assert space.contains(final)
                assert info["success"] == (reward[i] == 1.0)
        assert all(space[k].contains(obs[k][i]) for k in obs for i in range(4))
    assert finished > 0
    venv.close()


def test_maskable_ppo_takes_the_per_dimension_masks():
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("npigym/Addition-v0", n_envs=2, seed=0,
                        env_kwargs={"modes": "macro", "max_digits": 2})
    model = sb3_contrib.MaskablePPO("MultiInputPolicy", venv, n_steps=64, batch_size=64,
                                    n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    assert model.num_timesteps >= 128
    venv.close()


# ------------------------------------------------------------------------------------------------
# Jumanji's and dm_env's adapters.
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["Addition-v0", "Canonicalize-v0", "DiscountingChain-v0"])
def test_jumanji_to_gym_wrapper(env_id):
    from jumanji.wrappers import JumanjiToGymWrapper

    env = JumanjiToGymWrapper(npigym.make(env_id, **small_kwargs(env_id)), seed=0)
    obs, _ = env.reset()
    assert all(leaf is not None for leaf in tree.flatten(obs))
    assert obs in env.observation_space
    for _ in range(10):
        action = env.action_space.sample()
        if "action_mask" in obs:
            action[0] = np.flatnonzero(obs["action_mask"])[0]
        obs, _, terminated, truncated, _ = env.step(action)
        assert obs in env.observation_space
        if terminated or truncated:
            obs, _ = env.reset()


def test_no_none_in_specs_or_observations(addition):
    assert "full" not in vars(addition.observation_spec)
    key = jax.random.PRNGKey(0)
    _, timestep = jax.eval_shape(addition.reset, key)
    assert timestep.observation.full is None  # still the documented attribute
    assert "full" not in timestep.observation._asdict()
    full_env = npigym.make("Addition-v0", max_digits=3, observation="full")
    assert "full" in jax.eval_shape(full_env.reset, key)[1].observation._asdict()


@pytest.mark.parametrize("env_id", ["Canonicalize-v0", "DiscountingChain-v0"])
def test_dm_env_conforms(env_id):
    env = DmEnvWrapper(npigym.make(env_id, **small_kwargs(env_id)), seed=0)
    timestep = env.reset()
    for _ in range(5):
        tree.map_structure(lambda v, s: s.validate(v), timestep.observation,
                           env.observation_spec())
        timestep = env.step(env.action_spec().generate_value())


# ------------------------------------------------------------------------------------------------
# gymnax's API, PureJaxRL style.
# ------------------------------------------------------------------------------------------------
NUM_ENVS, NUM_STEPS = 8, 64


@pytest.fixture(scope="module")
def gymnax_env():
    return GymnaxEnv(npigym.make("Addition-v0", modes="macro", max_digits=2))


def test_gymnax_spaces(gymnax_env):
    params = gymnax_env.default_params
    obs_space, action_space = (gymnax_env.observation_space(params),
                               gymnax_env.action_space(params))
    assert isinstance(action_space, Discrete) and action_space.n == gymnax_env.num_actions
    assert isinstance(obs_space, Box) and len(obs_space.shape) == 1
    obs, _ = gymnax_env.reset(jax.random.PRNGKey(0), params)
    assert obs.shape == obs_space.shape and obs.dtype == jnp.float32
    assert bool(obs_space.contains(obs))
    dict_env = GymnaxEnv(gymnax_env.jumanji_env, observation="dict")
    obs, _ = dict_env.reset(jax.random.PRNGKey(0), None)
    assert bool(dict_env.observation_space(None).contains(obs))


def test_gymnax_rollout_purejaxrl_style(gymnax_env):
    # The shape of PureJaxRL's PPO loop: vmapped reset, a jitted lax.scan over vmapped steps
    # with the auto-reset inside step, params threaded through. Actions: uniform over the mask.
    env, env_params = gymnax_env, gymnax_env.default_params

    def rollout(rng):
        rng, _rng = jax.random.split(rng)
        reset_rng = jax.random.split(_rng, NUM_ENVS)
        obsv, env_state = jax.vmap(env.reset, in_axes=(0, None))(reset_rng, env_params)

        def _env_step(runner_state, unused):
            env_state, last_obs, rng = runner_state
            rng, _rng = jax.random.split(rng)
            mask = jax.vmap(env.action_mask, in_axes=(0, None))(env_state, env_params)
            action = jax.random.categorical(_rng, jnp.where(mask, 0.0, -jnp.inf))
            rng, _rng = jax.random.split(rng)
            rng_step = jax.random.split(_rng, NUM_ENVS)
            obsv, env_state, reward, done, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None))(rng_step, env_state, action, env_params)
            inside = jax.vmap(env.observation_space(env_params).contains)(obsv)
            return (env_state, obsv, rng), (reward, done, info, inside, env_state.step_count)

        return jax.lax.scan(_env_step, (env_state, obsv, rng), None, NUM_STEPS)

    (_, _, _), (reward, done, info, inside, step_count) = jax.jit(rollout)(
        jax.random.PRNGKey(0))
    reward, done, inside, step_count = map(np.asarray, (reward, done, inside, step_count))
    assert inside.all()
    assert not np.asarray(info["invalid_action"]).any()
    assert done.any()
    # Auto-reset: a finished env starts its next episode at step 0 in the same call.
    assert (step_count[done] == 0).all() and (step_count[~done] > 0).all()
    np.testing.assert_array_equal(reward == 1.0, np.asarray(info["success"]))
    np.testing.assert_array_equal(np.asarray(info["discount"])[~done], 1.0)


def test_gymnax_default_params_may_be_none(gymnax_env):
    obs, state = jax.jit(gymnax_env.reset)(jax.random.PRNGKey(0))
    obs, state, reward, done, info = jax.jit(gymnax_env.step)(jax.random.PRNGKey(1), state, 0)
    assert reward.shape == () and done.dtype == jnp.bool_ and "discount" in info
