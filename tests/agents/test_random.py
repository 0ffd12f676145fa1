"""The uniformly random valid policy."""

import jax
import jax.numpy as jnp
import jumanji
import numpy as np

import npigym
from npigym.agents.random import make_random_policy, masked_choice


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
