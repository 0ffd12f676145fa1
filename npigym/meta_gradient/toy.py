"""The debiasing paper's toy agent on the Discounting Chain (Bonnet, Midgley & Laterre 2022).

A linear softmax policy on the observation (one-hot context, time) and **no learned critic**:
every value is the exact one, ``npigym.envs.toy.true_value(obs, pi(.|obs), gamma)``, at the
inner discount for the inner loss and for the biased outer loss, at the outer discount for
the debiased one (the "outer value head" is exact here). This isolates the estimator's bias
from any critic-fitting error. The inner loss is the one-step (lambda = 0) policy gradient
with an entropy bonus, stepped by SGD; the discount is meta-learned in (0.9, 1).

Built from the same pieces as the deep agent: ``actor_critic.make_rollout`` collects batches
with the linear policy (a :class:`~npigym.agents.networks.Network` of pure functions),
:func:`npigym.meta_gradient.core.make_meta_loss` differentiates through the SGD step.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import chex
import jax
import jax.numpy as jnp
import optax
import rlax

from npigym.agents.actor_critic import (
    A2CConfig,
    HyperParams,
    Rollout,
    episode_lambda_returns,
    init_actor,
    make_env,
    make_optimizer,
    make_rollout,
)
from npigym.agents.networks import (
    EnvInfo,
    Network,
    NetworkConfig,
    PolicyOutput,
    StepOutput,
    categorical_entropy,
    categorical_log_prob,
)
from npigym.envs.toy.constants import NUM_ACTIONS
from npigym.envs.toy.env import true_value
from npigym.envs.toy.types import Observation
from npigym.meta_gradient.a2c import batch_stats_fn
from npigym.meta_gradient.config import MetaGradientConfig
from npigym.meta_gradient.core import InnerAgent
from npigym.meta_gradient.trainer import MetaTrainer, make_meta_train

sg = jax.lax.stop_gradient
NUM_FEATURES = NUM_ACTIONS + 2  # one-hot of the context (-1..4) and the time

# The paper's toy settings (discounting_chain_train.ipynb of the official code): 128 envs,
# full 100-step episodes, SGD 0.5 inner, gamma from 0.95 in (0.9, 1), gamma' = 1,
# lambda = lambda' = 0, entropy 0.005 inner and outer, Adam 0.1 meta. No inner gradient
# clipping (max_grad_norm is effectively off) and no meta-gradient clipping in the toy.
# Meta-gradients here are tiny (~1e-8: one decision in 100 steps carries the signal), and
# the official toy uses plain Adam, i.e. steps of about lr in eta whatever the scale. Adam's
# eps_root = 1e-8 would floor its denominator at 1e-4 and freeze eta, so the toy uses 1e-20
# (still > 0; the meta-optimizer is never differentiated through anyway; now also the
# MetaGradientConfig default). adam_eps stays at optax's 1e-8 (the default is now 0), the
# setting of the committed results/meta_discounting_chain run.
TOY_A2C = A2CConfig(num_envs=128, rollout_length=100, updates_per_call=50, optimizer="sgd",
                    learning_rate=0.5, max_grad_norm=1e9, discount=0.95, gae_lambda=0.0,
                    entropy_cost=0.005, value_cost=0.0, outer_discount=1.0, outer_lambda=0.0,
                    outer_value_cost=0.0)
TOY_META = MetaGradientConfig(estimator="debiased", learn=("discount",),
                              discount_bounds=(0.9, 1.0), learning_rate=0.1,
                              max_grad_norm=1e9, adam_eps_root=1e-20, adam_eps=1e-8,
                              outer_entropy_cost=0.005)


def features(obs: Observation) -> chex.Array:
    """(..., 7): one-hot of ``context + 1`` and the time."""
    return jnp.concatenate([jax.nn.one_hot(obs.context + 1, NUM_ACTIONS + 1),
                            obs.time[..., None]], axis=-1)


def policy_logits(params: Dict[str, chex.Array], obs: Observation) -> chex.Array:
    return features(obs) @ params["w"] + params["b"]


def make_linear_policy(env: Any, init_scale: float = 1e-4) -> Network:
    """A linear softmax policy as a :class:`Network` (value heads are zeros: the toy agent
    computes exact values itself). Its recurrent state is a dummy ``(B,)`` array."""
    info = EnvInfo.from_env(env)

    def init(key, obs, first):
        return {"w": init_scale * jax.random.normal(key, (NUM_FEATURES, NUM_ACTIONS)),
                "b": jnp.zeros((NUM_ACTIONS,), jnp.float32)}

    def initial_state(batch_size):
        return jnp.zeros((batch_size,), jnp.float32)

    def heads(params, obs, action):
        logits = policy_logits(params, obs)
        zeros = jnp.zeros(logits.shape[:-1], jnp.float32)
        return StepOutput(PolicyOutput(action, categorical_log_prob(logits, action),
                                       categorical_entropy(logits)), zeros, zeros)

    def step(params, state, obs, first, key, greedy=False, action=None):
        if action is None:
            logits = policy_logits(params, obs)
            action = (jnp.argmax(logits, -1) if greedy
                      else jax.random.categorical(key, logits)).astype(jnp.int32)
        return state, heads(params, obs, action)

    def unroll(params, state, obs, first, actions):
        return heads(params, obs, actions)

    def value(params, state, obs, first):
        zeros = jnp.zeros(first.shape, jnp.float32)
        return zeros, zeros

    return Network(init, initial_state, step, unroll, value, info, NetworkConfig())


def exact_values(params, obs: Observation, discount: chex.Numeric,
                 mapping_seed: int) -> chex.Array:
    """Exact values of a time-major batch of observations under the current (stop-gradiented)
    policy at ``discount``."""
    probs = sg(jax.nn.softmax(policy_logits(params, obs)))
    fn = jax.vmap(jax.vmap(true_value, in_axes=(0, 0, None, None)), in_axes=(0, 0, None, None))
    return fn(obs, probs, discount, mapping_seed)


def one_step_returns(batch: Rollout, discount: chex.Numeric, values: chex.Array,
                     lambda_: chex.Numeric) -> chex.Array:
    """[T, B] lambda-returns of the batch (episodes back to back; never truncated here)."""
    return jax.vmap(episode_lambda_returns, in_axes=(1, 1, 1, 1, 1, 1, None), out_axes=1)(
        batch.reward, discount * batch.discount, values, jnp.zeros_like(batch.reward),
        batch.last, batch.truncated, lambda_)


def make_toy_inner_agent(env: Any, a2c: A2CConfig = TOY_A2C,
                         meta: MetaGradientConfig = TOY_META) -> Tuple[InnerAgent, Network]:
    """The toy agent's pieces as an :class:`InnerAgent` (see the module docstring)."""
    network = make_linear_policy(env)
    train_env = make_env(env)
    optimizer = make_optimizer(a2c)
    mapping_seed = getattr(getattr(env, "unwrapped", env), "mapping_seed", 3)
    debiased = meta.estimator == "debiased"

    def log_prob_and_entropy(params, batch: Rollout):
        logits = policy_logits(params, batch.obs)[:-1]
        return categorical_log_prob(logits, batch.action), categorical_entropy(logits), logits

    def inner_loss(params, hyper: HyperParams, batch: Rollout):
        # Values at the inner discount, stop-gradiented inside the critic (as the paper's
        # true_value_fn); the discount's path through the TD target stays (the meta-gradient).
        values = exact_values(params, batch.obs, sg(hyper.discount), mapping_seed)
        g = one_step_returns(batch, hyper.discount, values, hyper.gae_lambda)
        advantage = g - values[:-1]
        log_prob, entropy, _ = log_prob_and_entropy(params, batch)
        pg_loss = -jnp.mean(advantage * log_prob)
        loss = pg_loss - hyper.entropy_cost * jnp.mean(entropy)
        return loss, dict(loss=loss, pg_loss=pg_loss, entropy=jnp.mean(entropy),
                          advantage=jnp.mean(advantage))

    def update(params, opt_state, batch: Rollout, hyper: HyperParams):
        grads, metrics = jax.grad(inner_loss, has_aux=True)(params, hyper, batch)
        opt_state = opt_state._replace(
            hyperparams={**opt_state.hyperparams, "learning_rate": hyper.learning_rate})
        updates, opt_state = optimizer.update(grads, opt_state, params)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return optax.apply_updates(params, updates), opt_state, metrics

    def outer_loss(params, old_params, batch: Rollout, hyper: HyperParams):
        value_discount = hyper.outer_discount if debiased else hyper.discount
        values = exact_values(params, batch.obs, sg(value_discount), mapping_seed)
        g = one_step_returns(batch, sg(hyper.outer_discount), values, sg(hyper.outer_lambda))
        advantage = sg(g - values[:-1])
        log_prob, entropy, logits = log_prob_and_entropy(params, batch)
        first = batch.first[:-1].astype(jnp.float32)
        pg_loss = -jnp.mean(advantage * log_prob)
        loss = pg_loss - meta.outer_entropy_cost * jnp.mean(entropy)
        metrics = dict(meta_pg_loss=pg_loss, meta_entropy=jnp.mean(entropy),
                       meta_advantage=jnp.mean(advantage),
                       # The first step's mean advantage: where the bias lives in this MDP.
                       meta_advantage_first=(jnp.sum(advantage * first)
                                             / jnp.maximum(jnp.sum(first), 1.0)))
        if meta.kl_cost > 0:
            old_logits = sg(log_prob_and_entropy(old_params, batch)[2])
            kl = jnp.mean(rlax.categorical_kl_divergence(logits, old_logits))
            loss = loss + meta.kl_cost * kl
            metrics["meta_kl"] = sg(kl)
        metrics["meta_outer_loss"] = loss
        return loss, metrics

    def init(key):
        env_key, net_key = jax.random.split(key)
        actor = init_actor(train_env, network, env_key, a2c.num_envs)
        params = network.init(net_key, actor.obs, actor.first)
        return params, optimizer.init(params), actor

    agent = InnerAgent(init, make_rollout(train_env, network, a2c), update, outer_loss,
                       batch_stats_fn(0), a2c.num_envs, a2c.rollout_length)
    return agent, network


def make_toy_train(env: Any, a2c: A2CConfig = TOY_A2C, meta: MetaGradientConfig = TOY_META
                   ) -> MetaTrainer:
    """The toy agent's trainer (``meta.estimator``: ``none`` for A2C with a fixed discount,
    ``biased`` or ``debiased``)."""
    agent, network = make_toy_inner_agent(env, a2c, meta)
    return make_meta_train(agent, a2c, meta, network, None)


def greedy_context_probs(params: Dict[str, chex.Array]) -> chex.Array:
    """(5,) the policy's probabilities of each context at the episode's first step."""
    obs = Observation(jnp.asarray(-1, jnp.int32), jnp.asarray(0.0, jnp.float32))
    return jax.nn.softmax(policy_logits(params, obs))
