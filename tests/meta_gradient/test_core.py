"""The meta-gradient on a synthetic problem: finite differences, mixing, bounds, Adam NaNs."""

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


def setup(agent, config):
    params, opt_state, actor = agent.init(jax.random.PRNGKey(0))
    base = HyperParams.from_config(A2C)
    return init_meta_params(config, base), base, params, opt_state, actor


def meta_grad(agent, config, seed):
    """The jitted meta-gradient at the agent's initial parameters."""
    meta_loss = make_meta_loss(agent, config)
    eta, base, params, opt_state, actor = setup(agent, config)

    def grad(e):
        return jax.grad(lambda x: meta_loss(x, base, params, opt_state, actor,
                                            jax.random.PRNGKey(seed))[0])(e)

    return jax.jit(grad)(eta)


def finite_difference(f, eta, eps=1e-2):
    out = {}
    for name in eta:
        plus = f({**eta, name: eta[name] + eps})
        minus = f({**eta, name: eta[name] - eps})
        out[name] = float((plus - minus) / (2 * eps))
    return out


@pytest.mark.parametrize("steps, mixing", [(1, "none"), (3, "geometric")])
def test_meta_gradient_matches_finite_differences(sgd_agent, steps, mixing):
    config = dataclasses.replace(BASE, meta_steps=steps, mixing=mixing)
    meta_loss = make_meta_loss(sgd_agent, config)
    eta, base, params, opt_state, actor = setup(sgd_agent, config)
    key = jax.random.PRNGKey(1)
    loss = jax.jit(lambda e: meta_loss(e, base, params, opt_state, actor, key)[0])
    grad = jax.jit(jax.grad(lambda e: meta_loss(e, base, params, opt_state, actor, key)[0]))(eta)
    fd = finite_difference(loss, eta)
    for name in LEARN:
        assert float(grad[name]) == pytest.approx(fd[name], rel=2e-2, abs=1e-4), name
        assert abs(float(grad[name])) > 1e-4, f"{name}: meta-gradient vanished"


def test_mixing_with_one_step_equals_the_one_step_meta_gradient(sgd_agent):
    grads = []
    for mixing in ("none", "uniform", "geometric"):
        config = dataclasses.replace(BASE, meta_steps=1, mixing=mixing)
        grads.append(meta_grad(sgd_agent, config, 2))
    for g in grads[1:]:
        for name in LEARN:
            assert float(g[name]) == float(grads[0][name])


def test_mixing_weights():
    def w(k, mixing, beta=0.5):
        return mixing_weights(MetaGradientConfig(meta_steps=k, mixing=mixing, mixing_beta=beta))

    np.testing.assert_allclose(w(3, "none"), [0, 0, 1])
    np.testing.assert_allclose(w(4, "uniform"), [0.25] * 4)
    np.testing.assert_allclose(w(3, "geometric"), [0.5, 0.25, 0.25])
    for k in (1, 5, 10):
        for m in ("none", "uniform", "geometric"):
            assert w(k, m).sum() == pytest.approx(1.0)


def test_remat_gives_the_same_meta_gradient(sgd_agent):
    out = []
    for remat in (True, False):
        config = dataclasses.replace(BASE, meta_steps=4, mixing="uniform", remat=remat)
        out.append(meta_grad(sgd_agent, config, 3))
    for name in LEARN:
        assert float(out[0][name]) == pytest.approx(float(out[1][name]), rel=1e-5)


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


def test_training_keeps_hyperparameters_in_bounds_with_a_huge_meta_step(sgd_agent):
    config = dataclasses.replace(BASE, learning_rate=10.0, max_grad_norm=1e3,
                                 discount_bounds=(0.8, 0.95))
    trainer = make_meta_train(sgd_agent, dataclasses.replace(A2C, updates_per_call=5), config)
    state, metrics = jax.jit(trainer.train)(trainer.init(jax.random.PRNGKey(0)))
    d = np.asarray(metrics["hp_discount"])
    assert np.all((d >= 0.8) & (d <= 0.95)) and np.all(np.isfinite(d))
    assert int(state.update_count) == 5 and np.all(np.isfinite(metrics["meta_grad_norm"]))


def test_adam_inner_optimizer_needs_eps_root_for_finite_meta_gradients():
    config = dataclasses.replace(BASE, meta_steps=2)
    grads = {}
    for eps_root in (0.0, 1e-8):
        agent = quadratic_agent(optax.adam(0.1, eps_root=eps_root))
        grads[eps_root] = meta_grad(agent, config, 4)
    assert any(np.isnan(float(g)) for g in grads[0.0].values())  # the pitfall is real
    assert all(np.isfinite(float(g)) for g in grads[1e-8].values())


@pytest.mark.parametrize("change, message", [
    (dict(estimator="unbiased"), "meta.estimator"),
    (dict(meta_steps=0), "meta.meta_steps"),
    (dict(mixing="exponential"), "meta.mixing"),
    (dict(adam_eps_root=0.0), "NaN"),
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
