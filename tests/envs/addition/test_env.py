"""Addition-v0: the NPI trace, the expert at scale, invariants, specs, bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.testing.env_not_smoke import check_env_does_not_smoke, check_env_specs_does_not_smoke
from jumanji.types import StepType

import npigym
from npigym.agents.random import make_random_policy
from npigym.envs.addition import Addition, ProblemGenerator
from npigym.envs.addition import constants as c
from npigym.wrappers.auto_reset import AutoResetWrapper

# NPI paper Fig. 3b, 96 + 125 = 221: every call with its depth.
FIG_3B = [
    (0, "ADD1"), (1, "WRITE(OUT, 1)"), (1, "CARRY"), (2, "MOVE_PTR(CARRY, LEFT)"),
    (2, "WRITE(CARRY, 1)"), (2, "MOVE_PTR(CARRY, RIGHT)"), (2, "RETURN"), (1, "RETURN"),
    (0, "LSHIFT"), (1, "MOVE_PTR(IN1, LEFT)"), (1, "MOVE_PTR(IN2, LEFT)"),
    (1, "MOVE_PTR(CARRY, LEFT)"), (1, "MOVE_PTR(OUT, LEFT)"), (1, "RETURN"),
    (0, "ADD1"), (1, "WRITE(OUT, 2)"), (1, "CARRY"), (2, "MOVE_PTR(CARRY, LEFT)"),
    (2, "WRITE(CARRY, 1)"), (2, "MOVE_PTR(CARRY, RIGHT)"), (2, "RETURN"), (1, "RETURN"),
    (0, "LSHIFT"), (1, "MOVE_PTR(IN1, LEFT)"), (1, "MOVE_PTR(IN2, LEFT)"),
    (1, "MOVE_PTR(CARRY, LEFT)"), (1, "MOVE_PTR(OUT, LEFT)"), (1, "RETURN"),
    (0, "ADD1"), (1, "WRITE(OUT, 2)"), (1, "RETURN"),
    (0, "LSHIFT"), (1, "MOVE_PTR(IN1, LEFT)"), (1, "MOVE_PTR(IN2, LEFT)"),
    (1, "MOVE_PTR(CARRY, LEFT)"), (1, "MOVE_PTR(OUT, LEFT)"), (1, "RETURN"),
    (0, "RETURN"),
]


@pytest.fixture(scope="module")
def env():
    return Addition(max_digits=4)


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step)


def expert_episode(env):
    """(key) -> (success, steps, every RETURN's postcondition held), one while_loop."""

    def run(key):
        state, timestep = env.reset(key)

        def body(carry):
            s, t, posts_ok = carry
            s, t = env.step(s, env.expert_action(s))
            returned = t.extras["returned_program"] >= 0
            return s, t, posts_ok & (~returned | t.extras["postcondition"])

        state, timestep, posts_ok = jax.lax.while_loop(
            lambda carry: ~carry[1].last(), body, (state, timestep, jnp.array(True)))
        return timestep.extras["success"], state.step_count, state.step_limit, posts_ok

    return jax.jit(jax.vmap(run))


def test_addition__expert_reproduces_the_paper_trace_for_96_plus_125():
    env = Addition(generator=ProblemGenerator([(96, 125)]))
    state, timestep = env.reset(jax.random.PRNGKey(0))
    step, expert = jax.jit(env.step), jax.jit(env.expert_action)
    calls = []
    while not timestep.last():
        action = expert(state)
        calls.append((int(state.stack.depth), env.library.format_call(action[0], action[1:])))
        state, timestep = step(state, action)
    assert calls == FIG_3B
    assert bool(timestep.extras["success"]) and float(timestep.reward) == 1.0
    np.testing.assert_array_equal(np.asarray(state.task.pad[c.OUT, -4:-1]), [3, 3, 2])  # 2 2 1


@pytest.mark.parametrize("digits, episodes", [(1, 64), (10, 64), (100, 16),
                                              pytest.param(1000, 4, marks=pytest.mark.slow)])
def test_addition__expert_solves_every_instance(digits, episodes):
    env = Addition(min_digits=digits, max_digits=digits)
    keys = jax.random.split(jax.random.PRNGKey(digits), episodes)
    solved, steps, limits, posts_ok = expert_episode(env)(keys)
    assert bool(jnp.all(solved)), f"expert failed {int((~solved).sum())} of {episodes}"
    assert bool(jnp.all(posts_ok)), "an expert RETURN reported a failed postcondition"
    assert bool(jnp.all(steps <= limits // 2)), "the expert needs more than half the limit"


@pytest.mark.slow
def test_addition__ten_thousand_digits_work():
    env = Addition(min_digits=10_000, max_digits=10_000)
    solved, steps, _, posts_ok = expert_episode(env)(jax.random.PRNGKey(7)[None])
    assert bool(solved[0]) and bool(posts_ok[0])
    assert int(steps[0]) > 9 * 10_000


def test_addition__macro_posing_expert_solves_with_builtins():
    env = npigym.make("Addition-macro-v0", max_digits=6)
    solved, steps, _, posts_ok = expert_episode(env)(jax.random.split(jax.random.PRNGKey(1), 32))
    assert bool(jnp.all(solved)) and bool(jnp.all(posts_ok))
    assert bool(jnp.all(steps <= 2 * 7 + 1))  # ADD1 and LSHIFT per column, then RETURN


def test_addition__flat_posing_is_solved_by_the_experts_primitives():
    generator = ProblemGenerator([(4096, 8125)])
    hierarchical = Addition(generator=generator)
    state, timestep = hierarchical.reset(jax.random.PRNGKey(0))
    h_step, expert = jax.jit(hierarchical.step), jax.jit(hierarchical.expert_action)
    primitives = []
    while not timestep.last():
        action = expert(state)
        if hierarchical.library.kind[int(action[0])] == 1:  # KIND_PRIMITIVE
            primitives.append(action)
        state, timestep = h_step(state, action)
    flat = Addition(generator=generator, modes="flat")
    state, timestep = flat.reset(jax.random.PRNGKey(0))
    step = jax.jit(flat.step)
    for action in primitives:
        state, timestep = step(state, action)
        assert not bool(timestep.extras["invalid_action"])
    state, timestep = step(state, jnp.zeros(4, jnp.int32))  # RETURN from ADD
    assert bool(timestep.extras["success"])


def test_addition__random_actions_keep_the_invariants(env):
    """Valid and raw (often invalid, out-of-spec) actions under auto-reset, 4 envs x 300 steps."""
    wrapped = AutoResetWrapper(env)
    policy = make_random_policy(env)
    batch, horizon = 4, 300

    def act(key, obs):
        k1, k2, k3 = jax.random.split(key, 3)
        valid = policy(k1, obs)
        raw = jax.random.randint(k2, (4,), -2, 12)
        return jnp.where(jax.random.bernoulli(k3, 0.3), raw, valid)

    @jax.jit
    def rollout(key):
        states, timesteps = jax.vmap(wrapped.reset)(jax.random.split(key, batch))

        def body(carry, k):
            s, t = carry
            actions = jax.vmap(act)(jax.random.split(k, batch), t.observation)
            s, t = jax.vmap(wrapped.step)(s, actions)
            return (s, t), (s.task.pointers, s.stack.depth, t, s.step_count, s.step_limit)

        _, out = jax.lax.scan(body, (states, timesteps), jax.random.split(key, horizon))
        return out

    pointers, depth, timesteps, counts, limits = rollout(jax.random.PRNGKey(0))
    width = env.width
    assert bool(jnp.all((pointers >= 0) & (pointers < width)))
    assert bool(jnp.all((depth >= 0) & (depth < env.max_depth)))
    chex.assert_tree_all_finite(timesteps.reward)
    last = timesteps.step_type == StepType.LAST
    assert bool(jnp.all(timesteps.step_type != StepType.FIRST))
    # discount 0 only on terminations; truncations keep 1; never > 1 or < 0.
    assert bool(jnp.all((timesteps.discount == 1) | (last & (timesteps.discount == 0))))
    assert bool(jnp.all(counts <= limits))
    assert int(last.sum()) > 0 and bool(jnp.any(timesteps.extras["invalid_action"]))
    spec = env.observation_spec
    for i in range(0, horizon, 37):
        for b in range(batch):
            obs = jax.tree.map(lambda x, i=i, b=b: x[i, b], timesteps.observation)
            spec.validate(obs)
            spec.validate(jax.tree.map(lambda x, i=i, b=b: x[i, b], timesteps.extras["next_obs"]))


def test_addition__reset_and_step_compile_once_and_vmap(env):
    reset = jax.jit(chex.assert_max_traces(env.reset, n=1))
    step = jax.jit(chex.assert_max_traces(env.step, n=1))
    state, timestep = reset(jax.random.PRNGKey(0))
    for action in ([4, 0, 0, 0], [2, 3, 5, 0], [1, 0, 0, 0], [0, 0, 0, 0]):
        state, timestep = step(state, jnp.asarray(action))
    states, timesteps = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(1), 3))
    chex.assert_shape(states.task.pad, (3, c.NUM_ROWS, env.width))
    assert states.task.pad.dtype == jnp.int8
    states, timesteps = jax.jit(jax.vmap(env.step))(states, jnp.zeros((3, 4), jnp.int32))
    chex.assert_shape(timesteps.observation.local, (3, c.NUM_ROWS))


def test_addition__same_key_same_instance_different_keys_differ(env):
    reset = jax.jit(jax.vmap(env.reset))
    a, _ = reset(jnp.stack([jax.random.PRNGKey(5)] * 2))
    chex.assert_trees_all_equal(*[jax.tree.map(lambda x, i=i: x[i], a) for i in range(2)])
    pads = reset(jax.random.split(jax.random.PRNGKey(6), 16))[0].task.pad
    assert len({np.asarray(p).tobytes() for p in pads}) > 12


@pytest.mark.parametrize("action, why", [
    ([2, c.IN1, 5, 0], "WRITE may not write to an input row"),
    ([1, c.OUT, c.RIGHT, 0], "moving right off the units column reaches the edge cell, fine; "
                             "twice goes off the pad"),
])
def test_addition__invalid_primitives_are_no_ops(action, why):
    env = Addition(generator=ProblemGenerator([(7, 8)]), invalid_action_penalty=0.1)
    step = jax.jit(env.step)
    state, _ = env.reset(jax.random.PRNGKey(0))
    state, _ = step(state, jnp.array([4, 0, 0, 0]))  # enter ADD1, which may call ACT
    if action[0] == 1:
        state, first = step(state, jnp.asarray(action))
        assert not bool(first.extras["invalid_action"])
    before = state
    state, timestep = step(state, jnp.asarray(action))
    assert bool(timestep.extras["invalid_action"]), why
    chex.assert_trees_all_equal(state.task, before.task)
    assert float(timestep.reward) == pytest.approx(-0.1)


def test_addition__returning_from_add_early_fails_and_terminates(step, env):
    state, _ = env.reset(jax.random.PRNGKey(2))
    state, timestep = step(state, jnp.zeros(4, jnp.int32))
    assert timestep.step_type == StepType.LAST and float(timestep.discount) == 0.0
    assert not bool(timestep.extras["success"]) and float(timestep.reward) == 0.0
    assert int(timestep.extras["returned_program"]) == c.ADD


def test_addition__truncation_at_the_default_limit():
    env = Addition(generator=ProblemGenerator([(5, 5)]))
    state, _ = env.reset(jax.random.PRNGKey(0))
    assert int(state.step_limit) == 2 * (14 * 2 + 1)
    step = jax.jit(env.step)
    for _ in range(int(state.step_limit)):
        state, timestep = step(state, jnp.array([6, 0, 0, 0]))  # LSHIFT, then masked calls
    assert timestep.step_type == StepType.LAST and float(timestep.discount) == 1.0


def test_addition__dense_reward_tracks_correct_columns():
    env = Addition(generator=ProblemGenerator([(987, 654)]), reward="dense")
    state, timestep = env.reset(jax.random.PRNGKey(0))
    step, expert = jax.jit(env.step), jax.jit(env.expert_action)
    rewards = []
    while not timestep.last():
        state, timestep = step(state, expert(state))
        rewards.append(float(timestep.reward))
    assert sum(rewards) == pytest.approx(2.0)  # 3 of 3 columns, then success
    assert sum(r > 0 for r in rewards) == 4 and min(rewards) >= 0


def test_addition__full_observation_shows_the_pad():
    env = Addition(max_digits=3, observation="full")
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(0))
    full = timestep.observation.full
    np.testing.assert_array_equal(full.pad, state.task.pad)
    np.testing.assert_array_equal(full.pointers, [env.width - 2] * 4)
    env.observation_spec.validate(timestep.observation)


def test_addition__passes_jumanji_checks(env):
    check_env_specs_does_not_smoke(env)
    check_env_does_not_smoke(env)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"max_digits": 0}, ValueError, "max_digits"),
    ({"min_digits": 5, "max_digits": 3}, ValueError, "min_digits"),
    ({"min_digits": 1.5}, ValueError, "min_digits"),
    ({"max_digits": True}, ValueError, "max_digits"),
    ({"reward": "shaped"}, ValueError, "reward"),
    ({"observation": "image"}, ValueError, "observation"),
    ({"modes": "diagonal"}, ValueError, "modes"),
    ({"modes": {"ADD1": "primitive"}}, ValueError, "ADD1"),
    ({"time_limit": -1}, ValueError, "time_limit"),
    ({"generator": ProblemGenerator([(1, 2)]), "max_digits": 4}, ValueError, "either"),
    ({"generator": object()}, TypeError, "AdditionGenerator"),
])
def test_addition__bad_knobs_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Addition(**kwargs)
