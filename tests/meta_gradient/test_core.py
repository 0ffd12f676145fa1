"""The meta-gradient on a synthetic problem: finite differences, mixing, remat, bounds, Adam NaNs.

Every meta-gradient, finite-difference loss and training run below is computed by one jitted
function (the ``results`` fixture), so the module compiles once."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from npigym.agents.actor_critic import HyperParams
from npigym.meta_gradient import (
    MetaGradientConfig,
    check_meta_config,
    hyperparams,
    init_meta_params,
    make_meta_loss,
    make_meta_train,
    mixing_weights,
)
from tests.meta_gradient.conftest import A2C, quadratic_agent

LEARN = ("discount", "gae_lambda", "entropy_cost", "value_cost")
BASE = MetaGradientConfig(estimator="debiased", learn=LEARN, remat=True)
EPS = 1e-2  # finite-difference step in eta
# Finite differences on the plain one-step path and on the rematerialised K-step mixture
# (each inner update scored): both remat settings are checked against the same ground truth.
FD_CASES = {"K=1, no remat": dict(meta_steps=1, remat=False),
            "K=3 geometric, remat": dict(meta_steps=3, mixing="geometric", remat=True)}
HUGE_STEP = dataclasses.replace(BASE, learning_rate=10.0, max_grad_norm=1e3,
                                discount_bounds=(0.8, 0.95))


def setup(agent, config):
    params, opt_state, actor = agent.init(jax.random.PRNGKey(0))
    base = HyperParams.from_config(A2C)
    return init_meta_params(config, base), base, params, opt_state, actor


def loss_and_grad(agent, config, seed):
    """``(loss(eta), grad(eta), eta)`` of the meta-loss at the agent's initial parameters."""
    meta_loss = make_meta_loss(agent, config)
    eta, base, params, opt_state, actor = setup(agent, config)
    key = jax.random.PRNGKey(seed)

    def loss(e):
        return meta_loss(e, base, params, opt_state, actor, key)[0]

    return loss, jax.grad(loss), eta


def perturbed(eta):
    """(2 * len(eta)) etas: each learned eta moved by +EPS, then by -EPS."""
    rows = [{**eta, n: eta[n] + s * EPS} for s in (1.0, -1.0) for n in eta]
    return jax.tree.map(lambda *x: jnp.stack(x), *rows)


@pytest.fixture(scope="module")
def results(sgd_agent):
    """Everything the tests below check, from one compiled function."""
    fd_loss, fd_grad, fd_eta = {}, {}, {}
    for name, change in FD_CASES.items():
        fd_loss[name], fd_grad[name], fd_eta[name] = loss_and_grad(
            sgd_agent, dataclasses.replace(BASE, **change), 1)
    mixing_grads = {m: loss_and_grad(sgd_agent, dataclasses.replace(BASE, meta_steps=1,
                                                                    mixing=m), 2)[1:]
                    for m in ("none", "uniform", "geometric")}
    adam = {eps_root: loss_and_grad(quadratic_agent(optax.adam(0.1, eps_root=eps_root)),
                                    dataclasses.replace(BASE, meta_steps=2), 4)[1:]
            for eps_root in (0.0, 1e-8)}
    trainer = make_meta_train(sgd_agent, dataclasses.replace(A2C, updates_per_call=5),
                              HUGE_STEP)

    @jax.jit
    def compute():
        out = {"fd": {}, "grad": {}}
        for name in FD_CASES:
            eta = fd_eta[name]
            out["grad"][name] = fd_grad[name](eta)
            losses = jax.vmap(fd_loss[name])(perturbed(eta))
            n = len(eta)
            out["fd"][name] = {k: (losses[i] - losses[n + i]) / (2 * EPS)
                               for i, k in enumerate(eta)}
        out["mixing"] = {m: g(eta) for m, (g, eta) in mixing_grads.items()}
        out["adam"] = {str(e): g(eta) for e, (g, eta) in adam.items()}
        state, metrics = trainer.train(trainer.init(jax.random.PRNGKey(0)))
        out["train"] = (state.update_count, metrics["hp_discount"], metrics["meta_grad_norm"])
        return out

    return jax.device_get(compute())


@pytest.mark.parametrize("case", list(FD_CASES))
def test_meta_gradient_matches_finite_differences(results, case):
    grad, fd = results["grad"][case], results["fd"][case]
    for name in LEARN:
        assert float(grad[name]) == pytest.approx(float(fd[name]), rel=2e-2, abs=1e-4), name
        assert abs(float(grad[name])) > 1e-4, f"{name}: meta-gradient vanished"


def test_mixing_with_one_step_equals_the_one_step_meta_gradient(results):
    grads = results["mixing"]
    for mixing in ("uniform", "geometric"):
        for name in LEARN:
            assert float(grads[mixing][name]) == pytest.approx(float(grads["none"][name]),
                                                               rel=1e-6), (mixing, name)


def test_mixing_weights():
    def w(k, mixing, beta=0.5):
        return mixing_weights(MetaGradientConfig(meta_steps=k, mixing=mixing, mixing_beta=beta))

    np.testing.assert_allclose(w(3, "none"), [0, 0, 1])
    np.testing.assert_allclose(w(4, "uniform"), [0.25] * 4)
    np.testing.assert_allclose(w(3, "geometric"), [0.5, 0.25, 0.25])
    for k in (1, 5, 10):
        for m in ("none", "uniform", "geometric"):
            assert w(k, m).sum() == pytest.approx(1.0)


def test_hyperparameters_stay_inside_their_bounds():
    config = MetaGradientConfig(estimator="biased", learn=("discount", "entropy_cost"),
                                discount_bounds=(0.9, 1.0), entropy_cost_bounds=(0.0, 0.02))
    base = HyperParams.from_config(A2C)._replace(discount=jnp.float32(0.95),
                                                 entropy_cost=jnp.float32(0.01))
    eta = init_meta_params(config, base)
    h = hyperparams(eta, base, config)
    assert float(h.discount) == pytest.approx(0.95, abs=1e-6)
    assert float(h.entropy_cost) == pytest.approx(0.01, abs=1e-6)
    for big in (-1e3, -30.0, 30.0, 1e3):
        h = hyperparams({k: jnp.float32(big) for k in eta}, base, config)
        assert np.float32(0.9) <= h.discount <= np.float32(1.0)
        assert np.float32(0.0) <= h.entropy_cost <= np.float32(0.02)
    # Frozen hyperparameters come from the base values with no gradient.
    g = jax.grad(lambda e: hyperparams(e, base, config).gae_lambda + hyperparams(
        e, base, config).discount)(eta)
    assert float(g["discount"]) > 0 and "gae_lambda" not in g


def test_training_keeps_hyperparameters_in_bounds_with_a_huge_meta_step(results):
    update_count, d, grad_norm = results["train"]
    assert np.all((d >= 0.8) & (d <= 0.95)) and np.all(np.isfinite(d))
    assert int(update_count) == 5 and np.all(np.isfinite(grad_norm))
    assert np.max(np.abs(d - 0.9)) > 0.05  # the huge steps moved it from 0.9 (to a bound)


def test_adam_inner_optimizer_needs_eps_root_for_finite_meta_gradients(results):
    grads = results["adam"]
    assert any(np.isnan(float(g)) for g in grads["0.0"].values())  # the pitfall is real
    assert all(np.isfinite(float(g)) for g in grads["1e-08"].values())


def test_meta_optimizer_steps_eta_by_its_learning_rate_on_tiny_meta_gradients():
    # Meta-gradients through Adam inner updates are ~1e-9. The default eps_root (and eps)
    # must not swamp them: Adam's first step is then about learning_rate in eta, while
    # optax's usual eps_root = 1e-8 would shrink it by ~1e5.
    config = MetaGradientConfig(estimator="debiased")
    eta = {"discount": jnp.zeros(())}
    grads = {"discount": jnp.float32(1e-9)}

    def first_step(optimizer):
        updates, _ = optimizer.update(grads, optimizer.init(eta), eta)
        return abs(float(updates["discount"]))

    from npigym.meta_gradient import make_meta_optimizer

    assert first_step(make_meta_optimizer(config)) == pytest.approx(config.learning_rate,
                                                                    rel=0.2)
    old = dataclasses.replace(config, adam_eps_root=1e-8, adam_eps=1e-8)
    assert first_step(make_meta_optimizer(old)) < 1e-3 * config.learning_rate


@pytest.mark.parametrize("change, message", [
    (dict(estimator="unbiased"), "meta.estimator"),
    (dict(meta_steps=0), "meta.meta_steps"),
    (dict(mixing="exponential"), "meta.mixing"),
    (dict(adam_eps_root=0.0), "NaN"),
    (dict(adam_eps=-1.0), "meta.adam_eps "),
    (dict(learn=("outer_discount",)), "cannot be meta-learned"),
    (dict(discount_bounds=(0.9, 0.95)), "strictly inside"),
    (dict(discount_bounds=(1.0, 0.9)), "low < high"),
    (dict(variance_groups=3), "divide"),
    (dict(learn=()), "nothing to meta-learn"),
])
def test_bad_meta_configs_are_rejected(change, message):
    config = dataclasses.replace(BASE, **change)
    initial = {n: getattr(A2C, n) for n in ("discount", "gae_lambda", "entropy_cost",
                                            "value_cost", "learning_rate")}
    initial["discount"] = 0.99
    with pytest.raises(ValueError, match=message):
        check_meta_config(config, initial, num_envs=16)
