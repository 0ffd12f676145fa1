"""Training with meta-learned hyperparameters: the shape of ``actor_critic.make_train``.

``init(key) -> MetaTrainState`` and ``train(state) -> (state, metrics)``, which runs
``updates_per_call`` *meta* updates (each K inner updates) in one ``lax.scan``; both pure, so
``jax.vmap`` over seeds and ``jax.jit`` work as for the actor-critic, and the host loop of
``npigym.experiments.train`` drives either. With ``estimator="none"`` the same trainer runs the
inner agent alone with fixed hyperparameters (the baseline, sharing every other piece).

Metrics of every meta update, besides the inner agent's (means over the K updates) and the
episode counters (inner and outer rollouts pooled; ``actor_critic.summarize`` reads them):

- ``hp_<name>``: each differentiable hyperparameter's value after the update;
- ``meta_grad_norm`` and ``meta_grad_<name>``: the (unclipped) meta-gradient with respect to
  each learned ``eta``;
- ``meta_advantage``: the mean outer advantage (the bias diagnostic), ``meta_loss``,
  ``meta_pg_loss``, ``meta_entropy`` (``meta_kl`` with STAC's term);
- with ``variance_groups = G``: ``meta_grad_var`` (and per hyperparameter) across G
  independent env groups' meta-gradients (see ``core.make_group_meta_gradients``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import optax

from npigym.agents.actor_critic import A2CConfig, HyperParams
from npigym.meta_gradient.config import LEARNABLE, MetaGradientConfig, check_meta_config
from npigym.meta_gradient.core import (
    InnerAgent,
    make_group_meta_gradients,
    make_meta_loss,
    make_meta_optimizer,
    rollouts_per_meta_update,
    set_learning_rate,
    variance_metrics,
)
from npigym.meta_gradient.params import MetaParams, hyperparams, init_meta_params


class MetaTrainState(NamedTuple):
    """The actor-critic's ``TrainState`` fields (``hyper``: the current values) plus the
    meta-parameters, their optimizer state and the fixed base hyperparameters."""

    params: Any
    opt_state: Any
    hyper: HyperParams
    actor: Any
    key: chex.PRNGKey
    update_count: chex.Array  # () int32, inner updates
    env_steps: chex.Array  # () float32, every env step taken (inner and outer rollouts)
    meta_params: MetaParams
    meta_opt_state: Any
    base_hyper: HyperParams


class MetaTrainer(NamedTuple):
    """Like ``actor_critic.Trainer``; ``meta_loss`` and ``agent`` for diagnostics."""

    init: Callable[[chex.PRNGKey], MetaTrainState]
    train: Callable[[MetaTrainState], Tuple[MetaTrainState, Dict[str, chex.Array]]]
    rollout: Callable[..., Any]
    update: Callable[..., Any]
    network: Any
    env: Any
    config: A2CConfig
    meta_config: MetaGradientConfig
    meta_loss: Callable[..., Any]
    agent: InnerAgent
    steps_per_call: int


def base_hyperparams(a2c: A2CConfig, meta: MetaGradientConfig) -> HyperParams:
    """The a2c config's hyperparameters with the meta config's outer discount / lambda (one
    value each for the outer objective and the outer value head's target)."""
    hyper = HyperParams.from_config(a2c)
    if meta.outer_discount is not None:
        hyper = hyper._replace(outer_discount=jnp.asarray(meta.outer_discount, jnp.float32))
    if meta.outer_lambda is not None:
        hyper = hyper._replace(outer_lambda=jnp.asarray(meta.outer_lambda, jnp.float32))
    return hyper


def steps_per_meta_update(agent: InnerAgent, meta: MetaGradientConfig) -> int:
    """Env steps of one meta update (inner and outer rollouts)."""
    if not meta.enabled:
        return agent.num_envs * agent.rollout_length
    inner, outer = rollouts_per_meta_update(meta)
    return (inner + outer) * agent.num_envs * agent.rollout_length


def make_meta_train(agent: InnerAgent, a2c: A2CConfig, meta: MetaGradientConfig,
                    network: Any = None, env: Any = None) -> MetaTrainer:
    """The trainer of ``agent`` with hyperparameters tuned as ``meta`` says.

    Raises:
        ValueError: for a meta config that does not fit the agent (see
            :func:`~npigym.meta_gradient.config.check_meta_config`).
    """
    check_meta_config(meta, {n: getattr(a2c, n) for n in LEARNABLE}, agent.num_envs)
    meta_loss = make_meta_loss(agent, meta)
    meta_optimizer = make_meta_optimizer(meta)
    group_grads = (make_group_meta_gradients(meta_loss, meta.variance_groups)
                   if meta.enabled and meta.variance_groups else None)
    per_update = steps_per_meta_update(agent, meta)
    inner_updates = meta.meta_steps if meta.enabled else 1

    def init(key: chex.PRNGKey, hyper: Optional[HyperParams] = None,
             meta_learning_rate: Optional[chex.Array] = None) -> MetaTrainState:
        """``hyper``: the base hyperparameters (default :func:`base_hyperparams`); learned
        ones start there. ``meta_learning_rate``: the meta-optimizer's step size (default
        ``meta.learning_rate``). Both are arguments so ``jax.vmap`` can train a batch of
        settings in one program (npigym.sweeps)."""
        key, agent_key = jax.random.split(key)
        params, opt_state, actor = agent.init(agent_key)
        base = base_hyperparams(a2c, meta) if hyper is None else hyper
        eta = init_meta_params(meta, base) if meta.enabled else {}
        meta_opt_state = meta_optimizer.init(eta)
        if meta_learning_rate is not None:
            meta_opt_state = set_learning_rate(meta_opt_state, meta_learning_rate)
        return MetaTrainState(params, opt_state, hyperparams(eta, base, meta), actor, key,
                              jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), eta,
                              meta_opt_state, base)

    def hyper_metrics(hyper: HyperParams) -> Dict[str, chex.Array]:
        return {f"hp_{n}": getattr(hyper, n) for n in (*LEARNABLE, "outer_discount")}

    def plain_step(state: MetaTrainState) -> Tuple[MetaTrainState, Dict[str, chex.Array]]:
        key, rollout_key = jax.random.split(state.key)
        actor, batch = agent.rollout(state.params, state.actor, rollout_key)
        params, opt_state, metrics = agent.update(state.params, state.opt_state, batch,
                                                  state.hyper)
        metrics = {**metrics, **agent.batch_stats(batch), **hyper_metrics(state.hyper)}
        return state._replace(params=params, opt_state=opt_state, actor=actor, key=key), metrics

    def meta_step(state: MetaTrainState) -> Tuple[MetaTrainState, Dict[str, chex.Array]]:
        key, meta_key, var_key = jax.random.split(state.key, 3)
        grads, aux = jax.grad(meta_loss, has_aux=True)(
            state.meta_params, state.base_hyper, state.params, state.opt_state, state.actor,
            meta_key)
        metrics = dict(aux.metrics)
        metrics["meta_grad_norm"] = optax.tree.norm(grads)
        metrics.update({f"meta_grad_{n}": g for n, g in grads.items()})
        if group_grads is not None:
            metrics.update(variance_metrics(group_grads(
                state.meta_params, state.base_hyper, state.params, state.opt_state,
                state.actor, var_key)))
        updates, meta_opt_state = meta_optimizer.update(grads, state.meta_opt_state,
                                                        state.meta_params)
        eta = optax.apply_updates(state.meta_params, updates)
        hyper = hyperparams(eta, state.base_hyper, meta)
        metrics.update(hyper_metrics(hyper))
        return state._replace(params=aux.params, opt_state=aux.opt_state, actor=aux.actor,
                              key=key, hyper=hyper, meta_params=eta,
                              meta_opt_state=meta_opt_state), metrics

    step = meta_step if meta.enabled else plain_step

    def train_step(state: MetaTrainState, _) -> Tuple[MetaTrainState, Dict[str, chex.Array]]:
        state, metrics = step(state)
        return state._replace(update_count=state.update_count + inner_updates,
                              env_steps=state.env_steps + per_update), metrics

    def train(state: MetaTrainState) -> Tuple[MetaTrainState, Dict[str, chex.Array]]:
        return jax.lax.scan(train_step, state, None, a2c.updates_per_call)

    return MetaTrainer(init, train, agent.rollout, agent.update, network, env, a2c, meta,
                       meta_loss, agent, per_update * a2c.updates_per_call)


def make_a2c_meta_train(env: Any, network: Any, a2c: A2CConfig, meta: MetaGradientConfig
                        ) -> MetaTrainer:
    """:func:`make_meta_train` for the actor-critic of ``npigym.agents.actor_critic`` on any
    Jumanji env (what ``npigym train --meta-gradient ...`` builds)."""
    from npigym.meta_gradient.a2c import make_a2c_inner_agent

    agent, train_env = make_a2c_inner_agent(env, network, a2c, meta)
    return make_meta_train(agent, a2c, meta, network, train_env)
