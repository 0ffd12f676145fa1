"""The actor-critic: loss pieces against hand computations, rollouts, training, resuming."""

import dataclasses

import jax
import jax.numpy as jnp
import jumanji
import numpy as np
import pytest
import rlax

import npigym
from npigym.agents.actor_critic import (
    A2CConfig,
    HyperParams,
    callee_reward,
    episode_lambda_returns,
    frame_lambda_returns,
    frame_successors,
    learning_rate_scale,
    make_loss,
    make_rollout,
    make_train,
    postcondition_shaping,
    summarize,
)
from npigym.agents.networks import NetworkConfig, make_network
from npigym.experiments import run_dir as rd

TINY_NET = NetworkConfig(encoder_layers=(32,), core_size=32, head_layers=(32,), embed_size=8)


# ----------------------------------------------------------------------------------------------
# Loss pieces.
# ----------------------------------------------------------------------------------------------
def test_episode_returns__termination_and_truncation_by_hand():
    """Steps: 0 mid-episode, 1 terminates, 2 is truncated (bootstrap from next_obs), 3 runs on
    past the rollout (bootstrap from the final observation)."""
    gamma, lam = 0.9, 0.5
    r = jnp.array([1.0, 0.0, 2.0, 0.5])
    env_discount = jnp.array([1.0, 0.0, 1.0, 1.0])
    v = jnp.array([0.1, 0.2, 0.3, 0.4, 0.5])  # v[4]: the observation after the rollout
    v_boot = jnp.array([0.0, 0.0, 0.7, 0.0])  # value of the real final observation of step 2
    last = jnp.array([False, True, True, False])
    truncated = jnp.array([False, False, True, False])
    g = episode_lambda_returns(r, gamma * env_discount, v, v_boot, last, truncated, lam)
    g3 = 0.5 + gamma * 0.5
    g2 = 2.0 + gamma * 0.7  # truncation: bootstrap from next_obs, not from v[3] (a new episode)
    g1 = 0.0  # termination
    g0 = 1.0 + gamma * ((1 - lam) * 0.2 + lam * g1)
    np.testing.assert_allclose(g, [g0, g1, g2, g3], rtol=1e-6)
    np.testing.assert_allclose(g - v[:-1], [g0 - 0.1, -0.2, g2 - 0.3, g3 - 0.4], rtol=1e-6)


def test_episode_returns__equal_rlax_without_episode_ends():
    r, d, v = (jax.random.uniform(jax.random.PRNGKey(i), (6,)) for i in range(3))
    v = jnp.concatenate([v, jnp.ones(1)])
    no = jnp.zeros((6,), bool)
    g = episode_lambda_returns(r, d, v, jnp.zeros(6), no, no, 0.8)
    np.testing.assert_allclose(g, rlax.lambda_returns(r, d, v[1:], 0.8), rtol=1e-6)


def test_frame_successors__by_hand():
    # depth: ADD(0) calls ADD1(1) at t=0; ADD1 writes (t=1), calls CARRY(2) at t=2; CARRY acts
    # t=3, returns t=4; ADD1 returns t=5; ADD acts t=6 and t=7; the rollout ends in ADD.
    depth = jnp.array([0, 1, 1, 2, 2, 1, 0, 0])
    last = jnp.zeros(8, bool)
    nxt = frame_successors(depth, last, jnp.array(0), max_depth=3)
    T, none = 8, 9
    assert nxt.tolist() == [6, 2, 5, 4, none, none, 7, T]
    # The episode ends at t=6 (a new one starts at t=7 at depth 0); rollout ends at depth 1.
    last = last.at[6].set(True)
    nxt = frame_successors(depth, last, jnp.array(1), max_depth=3)
    assert nxt.tolist() == [6, 2, 5, 4, none, none, none, none]


def test_callee_reward__by_hand():
    # The trace of test_frame_successors__by_hand; ADD1's WRITE (t=1) and CARRY's WRITE (t=3)
    # earn 1 and 2. ADD's call of ADD1 (t=0) earns both (its callee's steps 1..5), ADD1's call
    # of CARRY (t=2) the 2; RETURNs (t=4, t=5) and the other decisions have no callee. The
    # rollout ends in ADD at t=7: its sum runs to the end of the rollout (nothing left).
    depth = jnp.array([0, 1, 1, 2, 2, 1, 0, 0])
    nxt = frame_successors(depth, jnp.zeros(8, bool), jnp.array(0), max_depth=3)
    r = jnp.array([0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    ends = jnp.zeros(8, bool).at[4].set(True).at[5].set(True)
    np.testing.assert_allclose(callee_reward(r, nxt, ends), [3, 0, 2, 0, 0, 0, 0, 0])
    # A caller still waiting when the rollout ends gets what its callees earned so far.
    np.testing.assert_allclose(callee_reward(r[:4], nxt[:4].at[0].set(9).at[2].set(9),
                                             ends[:4]), [3, 0, 2, 0])


def test_subtree_reward_needs_frame_credit():
    env = npigym.make("Addition-v0", modes="macro", max_digits=2)
    with pytest.raises(ValueError, match="subtree_reward needs credit='frame'"):
        make_train(env, make_network(env, TINY_NET), A2CConfig(subtree_reward=True))


def test_frame_returns__by_hand():
    """Frame time: ADD1's decision at t=2 (the CARRY call) is followed by ADD1's RETURN at
    t=5; the rewards in between are CARRY's."""
    gamma, lam = 0.9, 0.5
    depth = jnp.array([0, 1, 1, 2, 2, 1, 0, 0])
    nxt = frame_successors(depth, jnp.zeros(8, bool), jnp.array(0), max_depth=3)
    returning = jnp.array([False, False, False, False, True, True, False, False])
    r = jnp.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])  # CARRY and ADD1 held
    v = jnp.arange(9, dtype=jnp.float32) / 10
    d = gamma * (1.0 - returning)
    g, valid = frame_lambda_returns(r, d, v, jnp.zeros(8), jnp.zeros(8, bool), nxt, lam)
    assert valid.all()
    g7 = 0.0 + gamma * v[8]
    g6 = gamma * ((1 - lam) * v[7] + lam * g7)
    g5 = 1.0  # ADD1 returns: its sub-episode ends
    g4 = 1.0  # CARRY returns
    g3 = gamma * ((1 - lam) * v[4] + lam * g4)
    g2 = gamma * ((1 - lam) * v[5] + lam * g5)  # skips CARRY's steps 3, 4
    g1 = gamma * ((1 - lam) * v[2] + lam * g2)
    g0 = gamma * ((1 - lam) * v[6] + lam * g6)  # ADD's next decision is t=6
    np.testing.assert_allclose(g, [g0, g1, g2, g3, g4, g5, g6, g7], rtol=1e-6)


def test_frame_returns__pending_callers_are_masked_and_truncation_bootstraps():
    depth = jnp.array([0, 1, 1])
    # Truncated right after t=2, with next_obs at depth 1: ADD1 bootstraps, ADD (t=0) cannot.
    last = jnp.array([False, False, True])
    nxt = frame_successors(depth, last, jnp.array(0), max_depth=3)
    boot_valid = jnp.array([False, False, True])
    v = jnp.array([0.1, 0.2, 0.3, 0.9])
    g, valid = frame_lambda_returns(jnp.zeros(3), jnp.full(3, 0.5), v, jnp.array([0, 0, 0.8]),
                                    boot_valid, nxt, 1.0)
    assert valid.tolist() == [False, True, True]
    np.testing.assert_allclose(g, [0.1, 0.5 * (0.5 * 0.8), 0.5 * 0.8], rtol=1e-6)


def test_frame_returns__at_depth_zero_equal_episode_returns():
    key = jax.random.PRNGKey(0)
    r, v, v_boot = (jax.random.normal(k, (n,)) for k, n in zip(jax.random.split(key, 3),
                                                                 (12, 13, 12)))
    last = jnp.zeros(12, bool).at[jnp.array([3, 8])].set(True)
    truncated = jnp.zeros(12, bool).at[8].set(True)
    env_discount = jnp.where(last & ~truncated, 0.0, 1.0)
    expected = episode_lambda_returns(r, 0.9 * env_discount, v, v_boot, last, truncated, 0.7)
    nxt = frame_successors(jnp.zeros(12, jnp.int32), last, jnp.array(0), max_depth=1)
    g, valid = frame_lambda_returns(r, 0.9 * env_discount, v, v_boot, truncated, nxt, 0.7)
    assert valid.all()
    np.testing.assert_allclose(g, expected, rtol=1e-5)


def test_postcondition_shaping():
    returning = jnp.array([True, True, False, False])
    held = jnp.array([True, False, True, False])
    np.testing.assert_allclose(postcondition_shaping(returning, held, 1.0, 0.5),
                               [1.0, -0.5, 0.0, 0.0])


# ----------------------------------------------------------------------------------------------
# Rollouts, the loss, training.
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def macro():
    """A tiny macro-mode Addition trainer, compiled once for the tests below."""
    env = npigym.make("Addition-v0", modes="macro", max_digits=2)
    network = make_network(env, TINY_NET)
    config = A2CConfig(num_envs=32, rollout_length=16, updates_per_call=25,
                       learning_rate=3e-3)
    trainer = make_train(env, network, config)
    return trainer, jax.jit(trainer.init), jax.jit(trainer.train)


def test_rollout_and_loss__shapes_auto_reset_and_differentiable_hyperparameters(macro):
    """One rollout: shapes, auto-reset bookkeeping; the loss is a pure function of
    (params, hyper, rollout) whose gradient reaches the discount, lambda and entropy cost
    (the meta-gradient agents need this path)."""
    trainer, init, _ = macro
    loss = make_loss(trainer.network, trainer.config)

    @jax.jit
    def rollout_and_grad(state, key):
        _, batch = trainer.rollout(state.params, state.actor, key)
        return batch, jax.grad(lambda h: loss(state.params, h, batch)[0])(state.hyper)

    state = init(jax.random.PRNGKey(0))
    batch, grad = rollout_and_grad(state, jax.random.PRNGKey(1))
    T, B = 16, 32
    assert batch.reward.shape == (T, B) and batch.action.shape == (T, B, 4)
    assert batch.obs.local.shape == (T + 1, B, 4) and batch.first.shape == (T + 1, B)
    assert batch.first[0].all()
    # an episode ends at t exactly when the next observation starts one
    np.testing.assert_array_equal(batch.first[1:], batch.last)
    assert batch.last.any()
    assert (np.asarray(batch.episode_length)[np.asarray(batch.last)] >= 1).all()
    assert batch.invalid.shape == (T + 1, B)
    assert isinstance(grad, HyperParams)
    assert float(grad.discount) != 0.0 and float(grad.gae_lambda) != 0.0
    assert float(grad.entropy_cost) != 0.0


def test_loss__uniform_kl_cost_adds_the_policys_kl_from_uniform(macro):
    """``uniform_kl_cost`` adds that many times the reported KL (always positive here: the
    policy is not uniform) and leaves the rest of the loss alone."""
    trainer, init, _ = macro
    plain = make_loss(trainer.network, trainer.config)
    with_kl = make_loss(trainer.network, dataclasses.replace(trainer.config,
                                                             uniform_kl_cost=0.5))

    @jax.jit
    def losses(state, key):
        _, batch = trainer.rollout(state.params, state.actor, key)
        return plain(state.params, state.hyper, batch), with_kl(state.params, state.hyper, batch)

    (base, metrics), (total, kl_metrics) = losses(init(jax.random.PRNGKey(0)),
                                                  jax.random.PRNGKey(1))
    assert float(metrics["uniform_kl"]) > 0.0
    np.testing.assert_allclose(kl_metrics["uniform_kl"], metrics["uniform_kl"])
    np.testing.assert_allclose(total, base + 0.5 * metrics["uniform_kl"], rtol=1e-5)


def test_rollout__root_return_penalty_prices_only_failed_episode_ends(macro):
    """With a sparse reward, a step's reward is 1 when the root RETURNs with its postcondition,
    minus the penalty when it RETURNs without (the episode gave up), and 0 otherwise
    (truncations are not RETURNs and are not penalised)."""
    trainer, init, _ = macro
    config = dataclasses.replace(trainer.config, root_return_penalty=2.0)
    rollout = jax.jit(make_rollout(trainer.env, trainer.network, config))
    state = init(jax.random.PRNGKey(0))
    _, batch = rollout(state.params, state.actor, jax.random.PRNGKey(2))
    reward, last = np.asarray(batch.reward), np.asarray(batch.last)
    gave_up = last & ~np.asarray(batch.truncated) & ~np.asarray(batch.episode_success)
    assert gave_up.any() and np.asarray(batch.episode_success).any()
    np.testing.assert_array_equal(reward[gave_up], -2.0)
    np.testing.assert_array_equal(reward[~gave_up], np.asarray(batch.episode_success,
                                                               np.float32)[~gave_up])


def test_rollout__flags_the_observations_that_follow_an_invalid_no_op():
    """``Rollout.invalid`` is the env's ``extras["invalid_action"]`` of the step that produced
    each observation (the network's ``previous_invalid`` input): where it is set, the
    observation equals the one before (an invalid call moves nothing, not even the depth)."""
    env = npigym.make("Addition-v0", max_digits=2)  # hierarchical: primitives can fail
    network = make_network(env, dataclasses.replace(TINY_NET, previous_invalid=True))
    trainer = make_train(env, network, A2CConfig(num_envs=8, rollout_length=16))
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    _, batch = jax.jit(trainer.rollout)(state.params, state.actor, jax.random.PRNGKey(1))
    invalid = np.asarray(batch.invalid)
    assert invalid.shape == (17, 8) and not invalid[0].any() and invalid.any()
    for leaf in jax.tree.leaves(batch.obs):
        leaf = np.asarray(leaf)
        np.testing.assert_array_equal(leaf[1:][invalid[1:]], leaf[:-1][invalid[1:]])


def test_train__learning_rate_is_read_from_the_hyperparameters(macro):
    _, init, train = macro
    state = init(jax.random.PRNGKey(0))
    frozen, _ = train(state._replace(hyper=state.hyper._replace(
        learning_rate=jnp.float32(0.0))))
    for a, b in zip(jax.tree.leaves(frozen.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_scale__linear_over_env_steps_then_constant():
    # 8 env steps per update: the decay spans 32 // 8 = 4 updates, from 1 to 0.25.
    config = A2CConfig(num_envs=4, rollout_length=2, learning_rate_decay_steps=32,
                       learning_rate_final_fraction=0.25)
    scale = jax.vmap(learning_rate_scale(config))(jnp.arange(6))
    np.testing.assert_allclose(scale, [1, 0.8125, 0.625, 0.4375, 0.25, 0.25], rtol=1e-6)
    constant = jax.vmap(learning_rate_scale(A2CConfig()))(jnp.arange(6))
    np.testing.assert_array_equal(constant, 1.0)


def test_train__logs_the_scheduled_learning_rate_and_keeps_the_base(macro):
    trainer, init, train = macro
    state, metrics = train(init(jax.random.PRNGKey(0)))
    np.testing.assert_allclose(metrics["learning_rate"], trainer.config.learning_rate,
                               rtol=1e-6)
    assert float(state.hyper.learning_rate) == pytest.approx(trainer.config.learning_rate)


@pytest.mark.slow
def test_train__return_improves_on_a_tiny_instance(macro):
    _, init, train = macro
    state = init(jax.random.PRNGKey(0))
    state, first = train(state)
    for _ in range(5):
        state, last = train(state)
    before, after = summarize(jax.device_get(first)), summarize(jax.device_get(last))
    assert after["return"] > before["return"] + 0.2, (before["return"], after["return"])
    assert int(state.update_count) == 6 * 25
    assert float(state.env_steps) == 6 * 25 * 16 * 32


def test_train__several_seeds_in_one_program(macro):
    trainer, _, _ = macro
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(3))
    state, metrics = jax.eval_shape(lambda k: jax.vmap(trainer.train)(jax.vmap(trainer.init)(k)),
                                    keys)
    assert all(x.shape[0] == 3 for x in jax.tree.leaves(state))
    assert metrics["loss"].shape == (3, trainer.config.updates_per_call)


def test_checkpoint__resume_continues_to_bitwise_equal_parameters(macro, tmp_path):
    _, init, train = macro
    state0 = init(jax.random.PRNGKey(0))
    straight, _ = train(train(state0)[0])
    half, _ = train(state0)
    checkpointer = rd.Checkpointer(str(tmp_path))
    checkpointer.save(1, half, {"calls": 1})
    restored, progress = checkpointer.restore(rd.abstract(jax.eval_shape(lambda: state0)))
    checkpointer.close()
    assert progress["calls"] == 1
    resumed, _ = train(restored)
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_train__runs_on_a_plain_jumanji_env():
    env = jumanji.make("Snake-v1", num_rows=6, num_cols=6)
    network = make_network(env, NetworkConfig(encoder_layers=(16,), core="gru", core_size=16,
                                              head_layers=(16,), conv_channels=(4, 4)))
    trainer = make_train(env, network, A2CConfig(num_envs=8, rollout_length=8,
                                                 updates_per_call=2))
    state, metrics = jax.jit(trainer.train)(jax.jit(trainer.init)(jax.random.PRNGKey(0)))
    assert np.isfinite(np.asarray(metrics["loss"])).all()
    assert float(state.env_steps) == 2 * 8 * 8


def test_make_train__frame_credit_needs_a_program_env():
    env = jumanji.make("Snake-v1", num_rows=6, num_cols=6)
    with pytest.raises(ValueError, match="program-machine"):
        make_train(env, make_network(env, TINY_NET), A2CConfig(credit="frame"))


def test_train__reports_program_success_to_an_unlocking_curriculum():
    from npigym.agents.curriculum import SubprogramStartWrapper

    env = SubprogramStartWrapper(npigym.make("Addition-v0", max_digits=2),
                                 {"ADD": 1, "ADD1": 1, "CARRY": 1, "LSHIFT": 1},
                                 unlock_threshold=0.5)
    trainer = make_train(env, make_network(env, TINY_NET),
                         A2CConfig(num_envs=8, rollout_length=8, updates_per_call=2,
                                   credit="frame"))
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    # Pretend LSHIFT and CARRY are learned: ADD1 (which calls CARRY) opens at the next update.
    lib = env.library
    rates = state.actor.env_state.success.at[:, [lib.id("LSHIFT"), lib.id("CARRY")]].set(1.0)
    state = state._replace(actor=state.actor._replace(
        env_state=state.actor.env_state.replace(success=rates)))
    state, metrics = jax.jit(trainer.train)(state)
    opened = np.asarray(metrics["program_open"])
    assert opened.shape == (2, lib.num_programs)
    assert opened[-1, lib.id("ADD1")] and opened[-1, lib.id("CARRY")]
    # ADD1's own rate, from 0, cannot reach 0.5 in two updates (moving average, decay 0.95).
    assert not opened[:, lib.id("ADD")].any()
    assert summarize(metrics)["program_open"].tolist() == opened[-1].tolist()


def test_train__accounts_for_the_env_steps_by_start_program_and_truncation():
    """``ended_steps`` / ``truncated_steps`` / ``program_steps`` say where the env steps went:
    with a step limit of 3, every truncated episode took exactly 3 steps, and the steps per
    start program add up to the steps of all the episodes that ended."""
    from npigym.agents.curriculum import SubprogramStartWrapper

    env = SubprogramStartWrapper(npigym.make("Addition-v0", max_digits=2, time_limit=3),
                                 {"ADD": 1, "ADD1": 1})
    trainer = make_train(env, make_network(env, TINY_NET),
                         A2CConfig(num_envs=8, rollout_length=8, updates_per_call=2,
                                   credit="frame"))
    _, metrics = jax.jit(trainer.train)(jax.jit(trainer.init)(jax.random.PRNGKey(0)))
    out = summarize(jax.device_get(metrics))
    assert metrics["truncated"].sum() > 0
    assert out["truncated_steps"] == 3 * float(metrics["truncated"].sum())
    assert 0 < out["truncated_steps"] <= out["ended_steps"]
    assert out["program_steps"].sum() == out["ended_steps"]
    lib = env.library
    assert set(np.flatnonzero(out["program_steps"])) <= {lib.id("ADD"), lib.id("ADD1")}
    assert out["ended_steps"] >= out["length"] * out["episodes"]


def test_rollout__records_the_executed_action_on_a_curriculums_forced_steps():
    """With a reverse curriculum the env executes the expert's action on forced steps: the
    rollout stores that one, and the acting frame's previous decision (``previous_action``)
    names it, not the policy's sample; elsewhere both are the sample, as without forcing."""
    from npigym.agents.actor_critic import init_actor, make_env
    from npigym.agents.curriculum import SubprogramStartWrapper

    base = npigym.make("Addition-v0", max_digits=2)
    env = SubprogramStartWrapper(base, {"ADD": 1, "ADD1": 1, "CARRY": 1, "LSHIFT": 1},
                                 max_forced=4)
    network = make_network(env, dataclasses.replace(TINY_NET, previous_action=True))
    config = A2CConfig(num_envs=16, rollout_length=1, credit="frame")
    train_env = make_env(env)
    actor = jax.jit(lambda k: init_actor(train_env, network, k, 16))(jax.random.PRNGKey(0))
    params = jax.jit(network.init)(jax.random.PRNGKey(1), actor.obs, actor.first)
    rollout = jax.jit(make_rollout(train_env, network, config))

    @jax.jit
    def sample_and_expert(actor, key):  # what env_step samples with the same key
        _, out = network.step(params, actor.core, actor.obs, actor.first,
                              jax.random.split(key, 1)[0], invalid=actor.invalid)
        return out.policy.action, jax.vmap(base.expert_action)(actor.env_state.inner)

    rows = np.arange(16)
    forced_steps = overridden = 0
    for t in range(12):
        key = jax.random.PRNGKey(10 + t)
        sampled, expert = (np.asarray(x) for x in sample_and_expert(actor, key))
        actor, batch = rollout(params, actor, key)
        forced, action = np.asarray(batch.forced[0]), np.asarray(batch.action[0])
        np.testing.assert_array_equal(action[forced], expert[forced])
        np.testing.assert_array_equal(action[~forced], sampled[~forced])
        _, _, previous = actor.core.frames
        np.testing.assert_array_equal(np.asarray(previous)[rows, np.asarray(actor.core.depth)],
                                      action[:, 0])
        forced_steps += forced.sum()
        overridden += (forced & (sampled[:, 0] != expert[:, 0])).sum()
    assert forced_steps > 0 and overridden > 0  # the sample would have named another call


def test_summarize__pools_over_calls_and_says_nan_when_no_episode_ended():
    metrics = {"episodes": np.array([[2.0], [0.0]]), "return_sum": np.array([[3.0], [0.0]]),
               "length_sum": np.array([[10.0], [0.0]]), "success_sum": np.array([[1.0], [0.0]]),
               "program_episodes": np.array([[[4.0, 0.0]], [[4.0, 0.0]]]),
               "program_success_sum": np.array([[[2.0, 0.0]], [[4.0, 0.0]]]),
               "loss": np.array([[1.0], [3.0]])}
    out = summarize(metrics)
    assert out["episodes"] == 2 and out["return"] == 1.5 and out["length"] == 5
    assert out["success"] == 0.5 and out["loss"] == 2.0
    assert out["program_success"][0] == 0.75 and np.isnan(out["program_success"][1])
    none = summarize({k: v[1:] for k, v in metrics.items()})
    assert np.isnan(none["success"]) and np.isnan(none["return"])


@pytest.mark.parametrize("max_grad_norm", [0.5, float("inf")])
def test_make_optimizer__rmsprop_decay_and_an_unclipped_update_differentiate_finitely(
        max_grad_norm):
    """``max_grad_norm=inf`` (the debiasing paper's unclipped inner RMSProp) must leave a finite
    meta-gradient: optax's clip at norm inf would give 0 * inf = NaN through the update."""
    from npigym.agents.actor_critic import make_optimizer

    config = A2CConfig(optimizer="rmsprop", rmsprop_decay=0.9, max_grad_norm=max_grad_norm,
                       learning_rate=0.1)
    opt = make_optimizer(config)
    params = jnp.array([1.0, -2.0])

    def after_update(scale):
        grads = scale * params
        updates, _ = opt.update(grads, opt.init(params), params)
        return jnp.sum(params + updates)

    g = jax.grad(after_update)(3.0)
    assert np.isfinite(g)
    # One RMSProp step from zero state by hand: nu = (1 - decay) g^2, update = -lr g /
    # sqrt(nu + eps) (optax keeps eps inside the root).
    grads = 3.0 * params
    if np.isfinite(max_grad_norm):
        grads = grads * min(1.0, max_grad_norm / float(jnp.linalg.norm(grads)))
    expected = params - 0.1 * grads / np.sqrt(0.1 * grads ** 2 + 1e-5)
    np.testing.assert_allclose(params + opt.update(3.0 * params, opt.init(params), params)[0],
                               expected, rtol=1e-5)
