"""Discounting Chain: dynamics as bsuite's, jit/vmap, registration, and the analytic value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym.envs.toy import DiscountingChain, Observation, true_value
from npigym.envs.toy.constants import REWARD_STEPS


def play(env, first_action):
    """Rewards and discounts of one episode that picks ``first_action`` then action 0."""
    step = jax.jit(env.step)
    state, ts = env.reset(jax.random.PRNGKey(0))
    assert int(ts.observation.context) == -1 and float(ts.observation.time) == 0.0
    rewards, discounts = [], []
    for t in range(100):
        state, ts = step(state, jnp.int32(first_action if t == 0 else 0))
        rewards.append(float(ts.reward))
        discounts.append(float(ts.discount))
    assert ts.last() and int(state.context) == first_action
    return np.array(rewards), np.array(discounts)


@pytest.mark.parametrize("context", range(5))
def test_each_context_pays_once_at_its_step(context):
    rewards, discounts = play(DiscountingChain(), context)
    expected = np.zeros(100)
    expected[REWARD_STEPS[context] - 1] = 1.1 if context == 3 else 1.0
    np.testing.assert_allclose(rewards, expected, rtol=1e-6)
    assert discounts[-1] == 0.0 and np.all(discounts[:-1] == 1.0)


def test_mapping_seed_moves_the_bonus():
    rewards, _ = play(DiscountingChain(mapping_seed=0), 0)
    assert rewards[0] == pytest.approx(1.1)


def test_reset_and_step_jit_and_vmap():
    env = npigym.make("DiscountingChain-v0")
    states, ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(1), 4))
    states, ts = jax.jit(jax.vmap(env.step))(states, jnp.arange(4))
    np.testing.assert_array_equal(ts.observation.context, [0, 1, 2, 3])
    np.testing.assert_allclose(ts.reward, [1.0, 0, 0, 0])
    assert env.action_spec.num_values == 5


def test_bad_mapping_seed_is_rejected():
    with pytest.raises(ValueError, match="mapping_seed"):
        DiscountingChain(mapping_seed="3")


def test_true_value_matches_discounted_return():
    gamma = 0.97
    probs = jnp.array([0.1, 0.2, 0.3, 0.25, 0.15])
    first = Observation(jnp.int32(-1), jnp.float32(0.0))
    returns = [(1.1 if c == 3 else 1.0) * gamma ** (REWARD_STEPS[c] - 1) for c in range(5)]
    assert float(true_value(first, probs, gamma)) == pytest.approx(float(probs @ jnp.array(
        returns)), rel=1e-5)
    # Context 3 at step 10: reward 1.1 at step 30, i.e. 20 steps ahead.
    mid = Observation(jnp.int32(3), jnp.float32(0.10))
    assert float(true_value(mid, probs, gamma)) == pytest.approx(1.1 * gamma ** 19, rel=1e-5)
    past = Observation(jnp.int32(0), jnp.float32(0.05))
    assert float(true_value(past, probs, gamma)) == 0.0
    # Differentiable in the discount and the probabilities.
    g = jax.grad(true_value, argnums=(1, 2))(first, probs, gamma)
    assert np.all(np.isfinite(g[0])) and float(g[1]) > 0
