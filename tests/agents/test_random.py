"""The uniformly random valid policy."""

import jax
import jax.numpy as jnp
import jumanji
import numpy as np

import npigym
from npigym.agents.random import make_random_policy, masked_choice, program_action_from_word
from npigym.envs.addition import constants as c


def test_masked_choice__uniform_over_the_mask():
    mask = jnp.array([False, True, False, True, True])
    words = jax.random.bits(jax.random.PRNGKey(0), (6000,), jnp.uint32)
    picks = np.asarray(jax.vmap(masked_choice, in_axes=(0, None))(words, mask))
    counts = np.bincount(picks, minlength=5)
    assert counts[0] == counts[2] == 0
    assert counts[[1, 3, 4]].min() > 1800


def test_random_policy__respects_the_mask_and_argument_specs():
    """Every action is callable and has allowed arguments; only the task may still reject a
    primitive (a pointer already on the edge cannot move off the pad)."""
    env = npigym.make("Addition-v0", max_digits=3)
    policy = make_random_policy(env)
    arg_valid = jnp.asarray(env.library.arg_valid)

    @jax.jit
    def rollout(key):
        state, timestep = env.reset(key)

        def body(carry, k):
            s, t = carry
            action = policy(k, t.observation)
            allowed = t.observation.action_mask[action[0]] & jnp.all(
                arg_valid[action[0], jnp.arange(3), action[1:]])
            s, t = env.step(s, action)
            # restart finished episodes so every step is a real decision
            s2, t2 = env.reset(k)
            s = jax.tree.map(lambda a, b: jnp.where(t.last(), a, b), s2, s)
            obs = jax.tree.map(lambda a, b: jnp.where(t.last(), a, b), t2.observation,
                               t.observation)
            return (s, t.replace(observation=obs)), allowed

        _, allowed = jax.lax.scan(body, (state, timestep), jax.random.split(key, 500))
        return allowed

    assert bool(jnp.all(rollout(jax.random.PRNGKey(0))))


def test_random_policy__works_on_a_jumanji_env():
    env = jumanji.make("Snake-v1")
    policy = make_random_policy(env)
    state, timestep = env.reset(jax.random.PRNGKey(0))
    action = policy(jax.random.PRNGKey(1), timestep.observation)
    assert bool(timestep.observation.action_mask[action])


def test_random_policy__arguments_are_uniform_over_the_allowed_values():
    env = npigym.make("Addition-v0", max_digits=3)
    _, timestep = env.reset(jax.random.PRNGKey(0))
    only_write = timestep.observation._replace(
        action_mask=jnp.arange(env.library.num_programs) == c.WRITE)
    words = jax.random.bits(jax.random.PRNGKey(1), (6000,), jnp.uint32)
    actions = np.asarray(jax.jit(jax.vmap(
        lambda w: program_action_from_word(env, w, only_write)))(words))
    assert (actions[:, 0] == c.WRITE).all()
    rows = np.bincount(actions[:, 1], minlength=c.NUM_ROWS)
    assert rows[c.IN1] == rows[c.IN2] == 0 and min(rows[c.CARRY], rows[c.OUT]) > 2800
    digits = np.bincount(actions[:, 2], minlength=10)
    assert len(digits) == 10 and digits.min() > 500  # 600 each on average
