"""Auto-reset: the batched wrapper resets only the ended envs and matches the per-env one."""

import chex
import jax
import jax.numpy as jnp
import pytest

import npigym
from npigym.agents.random import make_random_policy
from npigym.wrappers import AutoResetWrapper, VmapAutoResetWrapper
from npigym.wrappers.auto_reset import pass_sizes

BATCH, HORIZON = 8, 40


@pytest.fixture(scope="module")
def env():
    # Short instances and a random policy: several episodes end in the same step.
    return npigym.make("Addition-v0", max_digits=2)


def rollout_fn(env, step_batch, reset_batch):
    policy = make_random_policy(env)

    @jax.jit
    def rollout(key):
        state, ts = reset_batch(jax.random.split(key, BATCH))

        def body(carry, k):
            state, ts = carry
            action = jax.vmap(policy)(jax.random.split(k, BATCH), ts.observation)
            state, ts = step_batch(state, action)
            return (state, ts), (state, ts)

        _, out = jax.lax.scan(body, (state, ts), jax.random.split(key, HORIZON))
        return out

    return rollout


@pytest.fixture(scope="module")
def batched_rollouts(env):
    """Jitted rollouts of the batched wrapper, one per pass size (shared by the tests)."""
    cache = {}

    def get(resets_per_pass):
        if resets_per_pass not in cache:
            batched = VmapAutoResetWrapper(env, resets_per_pass=resets_per_pass)
            cache[resets_per_pass] = rollout_fn(env, batched.step, batched.reset)
        return cache[resets_per_pass]

    return get


@pytest.fixture(scope="module")
def per_env_result(env):
    per_env = AutoResetWrapper(env)
    return rollout_fn(env, jax.vmap(per_env.step), jax.vmap(per_env.reset))(
        jax.random.PRNGKey(3))


@pytest.mark.parametrize("resets_per_pass", [1, 2, BATCH])
def test_vmap_auto_reset__matches_the_per_env_wrapper(per_env_result, batched_rollouts,
                                                      resets_per_pass):
    """Same states, observations, extras and next-episode keys, whatever the pass size (with
    1 and 2, steps where more envs end take the larger passes or the reset of every env)."""
    got = batched_rollouts(resets_per_pass)(jax.random.PRNGKey(3))
    ends_per_step = jnp.sum(per_env_result[1].last(), axis=1)
    assert int(jnp.max(ends_per_step)) >= 3  # the multi-pass path is exercised
    chex.assert_trees_all_equal(got, per_env_result)


def test_vmap_auto_reset__under_vmap_over_seeds(batched_rollouts):
    """Inside an outer vmap (several seeds in one program) the seeds' envs reset as one
    folded batch, and the result is each seed's own rollout, whichever path a step takes."""
    rollout = batched_rollouts(1)
    keys = jax.random.split(jax.random.PRNGKey(5), 2)
    together = jax.jit(jax.vmap(rollout))(keys)
    for i in range(2):
        chex.assert_trees_all_equal(jax.tree.map(lambda x, i=i: x[i], together), rollout(keys[i]))


def test_vmap_auto_reset__stays_one_branch_under_vmap(env):
    """Vmapped over seeds, the step still branches between the small pass and the reset of
    every env (a batched lax.cond would become a select running both in every step)."""
    batched = VmapAutoResetWrapper(env)
    state, ts = jax.vmap(batched.reset)(jax.random.split(jax.random.PRNGKey(0), 2 * BATCH)
                                        .reshape(2, BATCH, -1))
    keys = jax.random.split(jax.random.PRNGKey(1), 2 * BATCH).reshape(2, BATCH, -1)
    action = jax.vmap(jax.vmap(make_random_policy(env)))(keys, ts.observation)
    jaxpr = jax.make_jaxpr(jax.vmap(batched.step))(state, action)
    conds = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "custom_vmap_call"]
    assert len(conds) == 1
    inner = str(conds[0].params["call"])
    assert "cond[" in inner
    # One folded batch of both seeds' envs.
    assert f"[{2 * BATCH}" in inner


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_vmap_auto_reset__rejects_a_bad_pass_size(env, bad):
    with pytest.raises(ValueError, match="resets_per_pass"):
        VmapAutoResetWrapper(env, resets_per_pass=bad)


def test_vmap_auto_reset__pass_size_defaults_to_an_eighth_of_the_batch(env):
    wrapper = VmapAutoResetWrapper(env)
    assert [wrapper.pass_size(n) for n in (1, 8, 100, 4096)] == [1, 1, 12, 512]
    assert VmapAutoResetWrapper(env, resets_per_pass=64).pass_size(16) == 16


def test_pass_sizes__double_below_the_batch():
    assert pass_sizes(16, 128) == (16, 32, 64)
    assert pass_sizes(1, 8) == (1, 2, 4)
    assert pass_sizes(8, 8) == (8,)
    assert pass_sizes(64, 16) == (16,)


def test_vmap_auto_reset__a_step_where_every_env_ends(env):
    """More endings than the largest pass: every env resets, as the per-env wrapper does."""
    from npigym.envs.machine.library import RETURN_ID

    batched = VmapAutoResetWrapper(env, resets_per_pass=1)
    per_env = AutoResetWrapper(env)
    keys = jax.random.split(jax.random.PRNGKey(7), BATCH)
    state, ts = batched.reset(keys)
    every_env_returns = jnp.zeros_like(make_random_policy(env)(keys[0], jax.tree.map(
        lambda x: x[0], ts.observation)))[None].repeat(BATCH, 0).at[:, 0].set(RETURN_ID)
    got = jax.jit(batched.step)(state, every_env_returns)
    want = jax.jit(jax.vmap(per_env.step))(jax.vmap(per_env.reset)(keys)[0], every_env_returns)
    assert bool(jnp.all(got[1].last()))
    chex.assert_trees_all_equal(got, want)
