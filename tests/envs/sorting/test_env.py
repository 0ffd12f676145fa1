"""Sorting-v0 as a Jumanji environment: jit/vmap, invariants under random actions, specs, the
dense reward, truncation, observations, registration and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.testing.env_not_smoke import check_env_does_not_smoke, check_env_specs_does_not_smoke
from jumanji.types import StepType

import npigym
from npigym.agents.random import make_random_policy, program_action_from_word
from npigym.envs.addition import ProblemGenerator
from npigym.envs.machine.generator import seed_word
from npigym.envs.sorting import ArrayGenerator, Max, RandomGenerator, Sorting
from npigym.envs.sorting import constants as c
from npigym.wrappers.auto_reset import AutoResetWrapper
from tests.envs.sorting.expert_runner import key_for


@pytest.fixture(scope="module")
def env():
    # The time limit keeps random episodes short (check_env_does_not_smoke runs one in Python).
    return Sorting(min_length=1, max_length=6, reward="dense", observation="full",
                   time_limit=50)


def inversions(values):
    a = np.asarray(values)
    return int(np.triu(a[:, None] > a[None, :], 1).sum())


def test_sorting__reset_and_step_compile_once_and_vmap(env):
    chex.clear_trace_counter()
    reset = jax.jit(chex.assert_max_traces(env.reset, n=1))
    step = jax.jit(chex.assert_max_traces(env.step, n=1))
    state, timestep = reset(jax.random.PRNGKey(0))
    assert timestep.step_type == StepType.FIRST and int(state.stack.program[0]) == c.BUBBLESORT
    for action in ([c.BUBBLE, 0, 0, 0], [c.MOVE_PTR, c.P2, c.RIGHT, 0], [c.BSTEP, 0, 0, 0],
                   [c.RETURN, 0, 0, 0], [c.RETURN, 0, 0, 0]):
        state, timestep = step(state, jnp.asarray(action))
    state, timestep = reset(jax.random.PRNGKey(1))
    states, timesteps = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(1), 3))
    chex.assert_shape(states.task.cells, (3, 6))
    assert states.task.cells.dtype == jnp.int8
    states, timesteps = jax.jit(jax.vmap(env.step))(states, jnp.zeros((3, 4), jnp.int32))
    chex.assert_shape(timesteps.observation.local, (3, c.NUM_LOCAL_FEATURES))
    assert bool(jnp.all(timesteps.step_type == StepType.LAST))  # RETURN from the root


def test_sorting__random_actions_keep_the_invariants(env):
    """Valid and raw (often invalid, out-of-spec) actions under auto-reset, 8 envs x 300 steps."""
    wrapped = AutoResetWrapper(env)
    policy = make_random_policy(env)
    batch, horizon = 8, 300

    def act(key, obs):
        k1, k2, k3 = jax.random.split(key, 3)
        raw = jax.random.randint(k2, (4,), -2, 12)
        return jnp.where(jax.random.bernoulli(k3, 0.2), raw, policy(k1, obs))

    @jax.jit
    def rollout(key):
        states, timesteps = jax.vmap(wrapped.reset)(jax.random.split(key, batch))

        def body(carry, k):
            s, t = carry
            s, t = jax.vmap(wrapped.step)(s, jax.vmap(act)(jax.random.split(k, batch),
                                                          t.observation))
            return (s, t), (s.task, s.stack.depth, t, s.step_count, s.step_limit)

        _, out = jax.lax.scan(body, (states, timesteps), jax.random.split(key, horizon))
        return out

    tasks, depth, timesteps, counts, limits = jax.tree.map(np.asarray, rollout(
        jax.random.PRNGKey(0)))
    n = tasks.length[..., None]
    assert np.all((tasks.pointers >= 0) & (tasks.pointers < n))
    assert np.all((depth >= 0) & (depth < env.max_depth))
    assert tasks.cells.dtype == np.int8 and tasks.cells.shape == (horizon, batch, 6)
    assert np.all(tasks.cells[np.arange(6) >= n] == c.BLANK)
    # SWAP only permutes: the multiset of each episode's array never changes.
    assert np.all(np.sort(tasks.cells, -1)[1:][tasks.fingerprint[1:] == tasks.fingerprint[:-1]]
                  == np.sort(tasks.cells, -1)[:-1][tasks.fingerprint[1:] == tasks.fingerprint[:-1]])
    assert np.all(np.isfinite(timesteps.reward))
    last = timesteps.step_type == StepType.LAST
    assert np.all(timesteps.step_type != StepType.FIRST)
    assert np.all((timesteps.discount == 1) | (last & (timesteps.discount == 0)))
    assert np.all(counts <= limits)
    assert last.sum() > 0 and timesteps.extras["invalid_action"].any()
    assert timesteps.extras["success"].any()  # length-1 arrays are sorted at once
    spec = env.observation_spec
    for i in (0, horizon // 2, horizon - 1):  # validating costs ~20 ms a time
        for b in range(0, batch, 2):
            spec.validate(jax.tree.map(lambda x, i=i, b=b: x[i, b], timesteps.observation))
            spec.validate(jax.tree.map(lambda x, i=i, b=b: x[i, b], timesteps.extras["next_obs"]))


def test_sorting__dense_reward_is_the_normalised_inversion_reduction(env):
    """Random valid actions without auto-reset: each episode's rewards sum to the inversions it
    removed over n (n - 1) / 2, plus 1 on success."""
    batch, horizon = 16, 120

    @jax.jit
    def rollout(key):
        keys = jax.random.split(key, batch)
        states, timesteps = jax.vmap(env.reset)(keys)
        first = states.task

        def body(carry, t):
            s, ts, done = carry
            words = jax.vmap(lambda k: seed_word(jax.random.fold_in(k, t)))(keys)
            actions = jax.vmap(lambda w, o: program_action_from_word(env, w, o))(
                words, ts.observation)
            s2, ts2 = jax.vmap(env.step)(s, actions)
            # Stop at the episode's end: keep its last state, no more reward.
            keep = lambda new, old: jnp.where(  # noqa: E731
                done.reshape((-1,) + (1,) * (new.ndim - 1)), old, new)
            s2 = jax.tree.map(keep, s2, s)
            reward = jnp.where(done, 0.0, ts2.reward)
            success = ~done & ts2.extras["success"]
            return (s2, ts2, done | ts2.last()), (reward, success)

        (last, _, _), (rewards, success) = jax.lax.scan(
            body, (states, timesteps, jnp.zeros(batch, bool)), jnp.arange(horizon))
        return first, last.task, rewards.sum(0), success.any(0)

    first, last, totals, success = jax.tree.map(np.asarray, rollout(jax.random.PRNGKey(5)))
    removed_any = False
    for b in range(batch):
        n = int(first.length[b])
        before = inversions(first.cells[b, :n])
        after = inversions(last.cells[b, :n])
        expected = (before - after) / max(n * (n - 1) // 2, 1) + float(success[b])
        assert totals[b] == pytest.approx(expected, abs=1e-5)
        assert int(last.inversions_removed[b]) == before - after
        removed_any |= before != after
    assert removed_any


def test_sorting__truncation_at_the_default_limit(fixed_env, fixed_jitted):
    reset, step, _ = fixed_jitted
    state, _ = reset(key_for(fixed_env, [1, 0]))
    assert int(state.step_limit) == 2 * (12 + 5 + 1 + 1)  # m = 1, one inversion
    for _ in range(int(state.step_limit)):
        state, timestep = step(state, jnp.array([c.MOVE_PTR, c.P1, c.LEFT, 0]))  # invalid
    assert timestep.step_type == StepType.LAST and float(timestep.discount) == 1.0
    assert not bool(timestep.extras["success"]) and float(timestep.reward) == -0.5


def test_sorting__full_observation_shows_the_array(env):
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(2))
    full = timestep.observation.full
    np.testing.assert_array_equal(full.cells, state.task.cells)
    np.testing.assert_array_equal(full.pointers, [0, 0, 0])
    assert int(full.length) == int(state.task.length)
    env.observation_spec.validate(timestep.observation)
    local = np.asarray(timestep.observation.local)
    n = int(state.task.length)
    assert local[:2].tolist() == [int(state.task.cells[0]) - 1] * 2
    assert local[2:].tolist() == [1, int(n == 1)] * 3  # every pointer at the start


def test_sorting__passes_jumanji_checks(env):
    select = jax.jit(lambda key, obs: program_action_from_word(env, seed_word(key), obs))
    check_env_specs_does_not_smoke(env)
    check_env_does_not_smoke(env, select_action=select)


def test_sorting__registered_ids_and_size_knobs():
    ids = npigym.registered_environments()
    for env_id in ("Sorting-v0", "Sorting-macro-v0", "Sorting-flat-v0", "Max-v0"):
        assert env_id in ids
    env = npigym.make("Sorting-macro-v0", max_length=5)
    assert isinstance(env, Sorting) and env.size_knobs == ("min_length", "max_length")
    assert env.library["BUBBLE"].mode == "builtin" and env.max_length == 5
    assert "Sorting(generator=RandomGenerator(min_length=2, max_length=5" in repr(env)
    assert isinstance(npigym.make("Max-v0"), Max)
    with pytest.raises(TypeError, match="max_length"):
        npigym.make("Sorting-v0", max_lenght=5)
    assert env.action_spec.num_values.tolist() == [10, 3, 2, 1]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"max_length": 0}, ValueError, "max_length"),
    ({"min_length": 5, "max_length": 3}, ValueError, "min_length"),
    ({"max_length": 10_000}, ValueError, "max_length"),
    ({"max_value": 0}, ValueError, "max_value"),
    ({"max_value": 100_000}, ValueError, "max_value"),
    ({"min_length": 1.5}, TypeError, "min_length"),
    ({"max_length": True}, TypeError, "max_length"),
    ({"reward": "shaped"}, ValueError, "reward"),
    ({"observation": "image"}, ValueError, "observation"),
    ({"modes": "diagonal"}, ValueError, "modes"),
    ({"modes": {"BUBBLE": "primitive"}}, ValueError, "BUBBLE"),
    ({"modes": {"MAX": "agent"}}, ValueError, "MAX"),
    ({"modes": 3}, ValueError, "modes"),
    ({"time_limit": 0}, ValueError, "time_limit"),
    ({"invalid_action_penalty": float("nan")}, ValueError, "invalid_action_penalty"),
    ({"render_mode": "video"}, ValueError, "render_mode"),
    ({"generator": ArrayGenerator([[1, 2]]), "max_length": 4}, ValueError, "either"),
    ({"generator": ArrayGenerator([[1, 2]]), "max_value": 4}, ValueError, "either"),
    ({"generator": ProblemGenerator([(1, 2)])}, TypeError, "SortingGenerator"),
    ({"generator": object()}, TypeError, "SortingGenerator"),
])
def test_sorting__bad_knobs_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Sorting(**kwargs)


def test_sorting__generator_sets_the_sizes():
    assert Sorting(max_length=1).generator.min_length == 1  # the default 2 gives way
    env = Sorting(generator=RandomGenerator(4, 9, 500))
    assert (env.max_length, env.max_value) == (9, 500)
    assert env.observation_spec.local.num_values.tolist() == [501, 501] + [2] * 6
