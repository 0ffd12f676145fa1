"""The meta-gradient through the real actor-critic (tiny network, Discounting Chain), the
outer value head's target, and ``npigym train --meta-gradient``.

One meta-gradient agent is compiled for the module: ``npigym train`` builds it (the ``cli_run``
fixture), and the process-wide cache of ``npigym.experiments.train.build`` hands the same
compiled functions to the tests that inspect its meta-gradients per update."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import npigym
from npigym import cli
from npigym.agents.actor_critic import A2CConfig, make_train
from npigym.agents.networks import NetworkConfig, make_network
from npigym.envs.toy import Observation
from npigym.experiments import run_dir as rd
from npigym.experiments.config import read_config
from npigym.experiments.train import build
from npigym.meta_gradient import MetaGradientConfig

LEARN = ("discount", "gae_lambda", "entropy_cost", "value_cost")
UPDATES = 3  # meta updates per call
# Debiased, K = 2, every differentiable loss coefficient learned; the inner optimizer (Adam)
# and the meta-optimizer settings are the defaults.
CLI_ARGS = ["train", "--env", "DiscountingChain-v0", "--agent", "a2c",
            "--meta-gradient", "debiased", "--meta-steps", "2", "--quiet", "--no-eval",
            "num_envs=4", "rollout_length=4", f"updates_per_call={UPDATES}", "core=none",
            "encoder_layers=[8]", "head_layers=[8]", f"total_env_steps={UPDATES * 48}",
            f"meta.learn=[{','.join(LEARN)}]"]


@pytest.fixture(scope="module")
def env():
    return npigym.make("DiscountingChain-v0")


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``(records of the CLI run, its config, metrics of one more call per update)``."""
    run = str(tmp_path_factory.mktemp("meta") / "run")
    assert cli.main([*CLI_ARGS, "--run-dir", run]) == 0
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    config = read_config(os.path.join(run, rd.CONFIG))
    _, _, _, init, train = build(config)  # cached: the CLI's compiled functions
    state, metrics = train(jax.jit(init)())
    return records, config, jax.device_get(metrics)


def test_cli_trains_with_meta_gradients_and_logs_hyperparameters(cli_run):
    records, config, _ = cli_run
    assert config.meta.estimator == "debiased" and config.meta.meta_steps == 2
    assert config.meta == dataclasses.replace(MetaGradientConfig(), estimator="debiased",
                                              meta_steps=2, learn=LEARN)
    # One call: UPDATES meta updates of 2 inner + 1 outer rollouts of 4 envs x 4 steps.
    assert len(records) == 1 and records[0]["env_steps"] == UPDATES * 48
    for key in ("hp_discount", "meta_grad_norm", "meta_advantage",
                *(f"meta_grad_{n}" for n in LEARN), *(f"hp_{n}" for n in LEARN)):
        assert np.isfinite(records[0][key]), key
    assert records[0]["meta_grad_discount"] != 0.0


def test_meta_gradient_reaches_every_learned_hyperparameter(cli_run):
    # Guards the stop-gradient pitfalls: rlax's stop_target_gradients / use_stop_gradient
    # defaults, or stop-gradiented advantages, would make some of these exactly 0.
    _, _, metrics = cli_run
    for name in LEARN:
        g = metrics[f"meta_grad_{name}"]
        assert g.shape == (1, UPDATES) and np.all(np.isfinite(g)), name
        assert np.all(g != 0.0), (name, g)


def test_learned_hyperparameters_move_with_the_default_meta_optimizer(cli_run):
    # Through Adam inner updates the meta-gradients are tiny (about 1e-9 .. 1e-7 here); the
    # default meta-optimizer must still step each eta by about its learning rate (optax's
    # usual eps_root = 1e-8 would step it by ~1e-4 of that: the values would not move).
    _, config, metrics = cli_run
    lr = config.meta.learning_rate
    assert np.max(np.abs(metrics["meta_grad_discount"])) < 1e-5
    for name in LEARN:
        low, high = config.meta.bounds(name)
        unit = (np.concatenate([[getattr(config.a2c, name)], metrics[f"hp_{name}"][0]])
                .astype(np.float64) - low) / (high - low)
        eta = np.log(unit) - np.log1p(-unit)
        # Adam's first step is the sign of the gradient times lr (less a little float32
        # rounding of the logged value); later ones shrink where the sign flips.
        assert abs(eta[1] - eta[0]) == pytest.approx(lr, rel=0.2), (name, eta)
    # What the old default would have done with the same first meta-gradient.
    old = optax.adam(lr, eps_root=1e-8)
    g = {"discount": jnp.asarray(metrics["meta_grad_discount"][0, 0])}
    step, _ = old.update(g, old.init(g))
    assert abs(float(step["discount"])) < 0.01 * lr


def test_outer_value_head_learns_the_outer_discount_value(env):
    # After the first action the values are known: context 2 pays 1.0 at step 10, so at step 2
    # V_gamma = gamma**7 (0.8**7 = 0.21) and V_1 = 1.0. A high entropy cost keeps every context
    # visited; lambda = 1 makes the targets Monte Carlo returns.
    config = A2CConfig(num_envs=32, rollout_length=20, updates_per_call=240,
                       learning_rate=5e-3, discount=0.8, gae_lambda=1.0, entropy_cost=1.0,
                       outer_discount=1.0, outer_lambda=1.0)
    network = make_network(env, NetworkConfig(core="none", encoder_layers=(32,),
                                              head_layers=(32,)))
    trainer = make_train(env, network, config)
    state, _ = jax.jit(lambda key: trainer.train(trainer.init(key)))(jax.random.PRNGKey(0))
    obs = Observation(jnp.array([2, 2]), jnp.array([0.02, 0.05]))
    value, outer = network.value(state.params, network.initial_state(2), obs,
                                 jnp.zeros(2, bool))
    np.testing.assert_allclose(outer, [1.0, 1.0], atol=0.2)
    np.testing.assert_allclose(value, [0.8 ** 7, 0.8 ** 4], atol=0.2)


def test_cli_rejects_bad_meta_settings(tmp_path):
    with pytest.raises(SystemExit, match=r"meta\.meta_steps"):
        cli.main(["train", "--env", "DiscountingChain-v0", "--meta-gradient", "biased",
                  "--meta-steps", "0", "--runs-root", str(tmp_path)])
    with pytest.raises(SystemExit, match="strictly inside"):
        cli.main(["train", "--env", "DiscountingChain-v0", "--meta-gradient", "biased",
                  "discount=1.0", "--runs-root", str(tmp_path)])
    # The meta-gradient agents own the learning rate's trajectory: no schedule on top.
    with pytest.raises(SystemExit, match="learning_rate_decay_steps is not supported"):
        cli.main(["train", "--env", "DiscountingChain-v0", "--meta-gradient", "biased",
                  "learning_rate_decay_steps=1000", "--runs-root", str(tmp_path)])
    # Nor do they report the programs' success that an unlocking curriculum waits for.
    with pytest.raises(SystemExit, match="curriculum_unlock is not supported"):
        cli.main(["train", "--env", "Addition-v0", "--meta-gradient", "biased",
                  "max_digits=2", "curriculum={ADD: 1, ADD1: 1}", "curriculum_unlock=0.5",
                  "--runs-root", str(tmp_path)])


def test_short_keys_still_mean_the_agents(env):
    from npigym.experiments.config import load_config

    config = load_config(None, ["learning_rate=3e-3", "meta.learning_rate=0.1"])
    assert config.a2c.learning_rate == 3e-3 and config.meta.learning_rate == 0.1
    assert dataclasses.replace(config.meta).estimator == "none"


def test_biased_and_debiased_outer_losses_read_different_value_heads(env):
    """``biased`` scores the outer loss with the inner critic (trained at the meta-learned
    discount), ``debiased`` with the outer head: moving one head's output moves only its
    estimator's outer advantage."""
    from npigym.agents.actor_critic import HyperParams
    from npigym.meta_gradient.a2c import make_outer_loss

    # (With an outer discount of 1 and no episode end, a constant shift of the values cancels
    # out of the lambda-return advantages; 0.9 makes them see it.)
    config = A2CConfig(num_envs=4, rollout_length=8, outer_discount=0.9)
    network = make_network(env, NetworkConfig(core="none", encoder_layers=(8,),
                                              head_layers=(8,)))
    trainer = make_train(env, network, config)
    state = trainer.init(jax.random.PRNGKey(0))
    _, batch = jax.jit(trainer.rollout)(state.params, state.actor, jax.random.PRNGKey(1))
    hyper = HyperParams.from_config(config)

    def shifted(head):  # the head's output bias + 1
        return {name: ({**p, "b": p["b"] + 1.0} if name.endswith(head) else p)
                for name, p in state.params.items()}

    inner_head, outer_head = "heads/value", "outer_value/~/linear_1"
    for estimator, moved, kept in (("biased", inner_head, outer_head),
                                   ("debiased", outer_head, inner_head)):
        meta = MetaGradientConfig(estimator=estimator)
        loss = jax.jit(make_outer_loss(network, config, meta))

        def advantage(params, loss=loss):
            return float(loss(params, params, batch, hyper)[1]["meta_advantage"])

        base = advantage(state.params)
        assert advantage(shifted(moved)) != pytest.approx(base, abs=1e-3), estimator
        assert advantage(shifted(kept)) == pytest.approx(base, abs=1e-6), estimator
