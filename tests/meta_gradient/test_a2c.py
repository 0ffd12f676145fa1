"""The meta-gradient through the real actor-critic (tiny network, Discounting Chain), the
outer value head's target, and ``npigym train --meta-gradient``."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym import cli
from npigym.agents.actor_critic import A2CConfig, make_train
from npigym.agents.networks import NetworkConfig, make_network
from npigym.envs.toy import Observation
from npigym.meta_gradient import MetaGradientConfig, make_a2c_meta_train

LEARN = ("discount", "gae_lambda", "entropy_cost", "value_cost")
NET = NetworkConfig(core="none", encoder_layers=(16,), head_layers=(16,))
A2C = A2CConfig(num_envs=8, rollout_length=8, updates_per_call=2, optimizer="sgd",
                learning_rate=0.1, discount=0.9, gae_lambda=0.8, entropy_cost=0.05)


@pytest.fixture(scope="module")
def env():
    return npigym.make("DiscountingChain-v0")


@pytest.fixture(scope="module")
def grads(env):
    """The debiased meta-gradient at the initial state (through the sgd update); the CLI test
    below runs the biased one end to end."""
    meta = MetaGradientConfig(estimator="debiased", learn=LEARN)
    trainer = make_a2c_meta_train(env, make_network(env, NET), A2C, meta)
    state = trainer.init(jax.random.PRNGKey(0))

    @jax.jit
    def grad(eta):
        return jax.grad(lambda e: trainer.meta_loss(e, state.base_hyper, state.params,
                                                    state.opt_state, state.actor,
                                                    jax.random.PRNGKey(1))[0])(eta)

    return "debiased", grad(state.meta_params)


def test_meta_gradient_reaches_every_learned_hyperparameter(grads):
    # Guards the stop-gradient pitfalls: rlax's stop_target_gradients / use_stop_gradient
    # defaults, or stop-gradiented advantages, would make some of these exactly 0.
    estimator, g = grads
    for name in LEARN:
        assert np.isfinite(float(g[name])) and abs(float(g[name])) > 0, (estimator, name)


def test_outer_value_head_learns_the_outer_discount_value(env):
    # After the first action the values are known: context 2 pays 1.0 at step 10, so at step 2
    # V_gamma = gamma**7 (0.8**7 = 0.21) and V_1 = 1.0. A high entropy cost keeps every context
    # visited; lambda = 1 makes the targets Monte Carlo returns.
    config = A2CConfig(num_envs=32, rollout_length=20, updates_per_call=80,
                       learning_rate=5e-3, discount=0.8, gae_lambda=1.0, entropy_cost=1.0,
                       outer_discount=1.0, outer_lambda=1.0)
    network = make_network(env, NetworkConfig(core="none", encoder_layers=(32,),
                                              head_layers=(32,)))
    trainer = make_train(env, network, config)
    train = jax.jit(trainer.train)
    state = trainer.init(jax.random.PRNGKey(0))
    for _ in range(3):
        state, _ = train(state)
    obs = Observation(jnp.array([2, 2]), jnp.array([0.02, 0.05]))
    value, outer = network.value(state.params, network.initial_state(2), obs,
                                 jnp.zeros(2, bool))
    np.testing.assert_allclose(outer, [1.0, 1.0], atol=0.2)
    np.testing.assert_allclose(value, [0.8 ** 7, 0.8 ** 4], atol=0.2)


def test_cli_trains_with_meta_gradients_and_logs_hyperparameters(tmp_path):
    run = str(tmp_path / "run")
    code = cli.main(["train", "--env", "DiscountingChain-v0", "--agent", "a2c",
                     "--meta-gradient", "biased", "--meta-steps", "2", "--run-dir", run,
                     "--quiet", "--no-eval", "num_envs=4", "rollout_length=4",
                     "updates_per_call=1", "core=none", "encoder_layers=[8]",
                     "head_layers=[8]", "total_env_steps=48", "meta.learn=[discount]",
                     "meta.learning_rate=0.01"])
    assert code == 0
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    # One call: 2 inner + 1 outer rollouts of 4 envs x 4 steps.
    assert len(records) == 1 and records[0]["env_steps"] == 48
    for key in ("hp_discount", "meta_grad_norm", "meta_grad_discount", "meta_advantage"):
        assert np.isfinite(records[0][key]), key
    assert records[0]["meta_grad_discount"] != 0.0


def test_cli_rejects_bad_meta_settings(tmp_path):
    with pytest.raises(SystemExit, match=r"meta\.meta_steps"):
        cli.main(["train", "--env", "DiscountingChain-v0", "--meta-gradient", "biased",
                  "--meta-steps", "0", "--runs-root", str(tmp_path)])
    with pytest.raises(SystemExit, match="strictly inside"):
        cli.main(["train", "--env", "DiscountingChain-v0", "--meta-gradient", "biased",
                  "discount=1.0", "--runs-root", str(tmp_path)])


def test_short_keys_still_mean_the_agents(env):
    from npigym.experiments.config import load_config

    config = load_config(None, ["learning_rate=3e-3", "meta.learning_rate=0.1"])
    assert config.a2c.learning_rate == 3e-3 and config.meta.learning_rate == 0.1
    assert dataclasses.replace(config.meta).estimator == "none"
