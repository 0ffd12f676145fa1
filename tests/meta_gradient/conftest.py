"""A synthetic inner agent with closed-form pieces (no environment), shared by the tests."""

import jax
import jax.numpy as jnp
import optax
import pytest

from npigym.agents.actor_critic import A2CConfig, HyperParams
from npigym.meta_gradient.core import InnerAgent

DIM, BATCH = 3, 16
A2C = A2CConfig(num_envs=BATCH, rollout_length=1, discount=0.9, gae_lambda=0.5,
                entropy_cost=0.05, value_cost=0.5)


def quadratic_agent(optimizer: optax.GradientTransformation) -> InnerAgent:
    """Params ``w`` (and a leaf ``z`` whose gradient is exactly 0 but depends on the discount,
    the Adam pitfall). Inner loss ``discount * mean|w - x|^2 + entropy_cost |w|^2 +
    gae_lambda * sum(w) + value_cost * 0 * z``-style terms on a batch x ~ N(0, 1); outer loss
    ``mean|w - (x + 1)|^2 + 0.1 sum(z)`` on a fresh batch."""

    def rollout(params, actor, key):
        return actor + 1, jax.random.normal(key, (BATCH, DIM)) + 0.1 * actor

    def inner_loss(params, hyper: HyperParams, x):
        w, z = params["w"], params["z"]
        return (hyper.discount * jnp.mean(jnp.sum((w - x) ** 2, -1))
                + hyper.entropy_cost * jnp.sum(w ** 2) + hyper.gae_lambda * jnp.sum(w)
                + hyper.value_cost * jnp.sum(w[:1] ** 3) + 0.0 * hyper.discount * jnp.sum(z))

    def update(params, opt_state, x, hyper):
        grads = jax.grad(inner_loss)(params, hyper, x)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"inner": inner_loss(
            params, hyper, x)}

    def outer_loss(params, old_params, x, hyper):
        loss = jnp.mean(jnp.sum((params["w"] - (x + 1.0)) ** 2, -1)) + 0.1 * jnp.sum(params["z"])
        return loss, {"meta_advantage": jnp.zeros(())}

    def init(key):
        params = {"w": jnp.full((DIM,), 0.3), "z": jnp.ones((2,))}
        return params, optimizer.init(params), jnp.zeros((), jnp.float32)

    return InnerAgent(init, rollout, update, outer_loss, lambda x: {}, BATCH, 1)


@pytest.fixture(scope="module")
def sgd_agent():
    return quadratic_agent(optax.sgd(0.3))
