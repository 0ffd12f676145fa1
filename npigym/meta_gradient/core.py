"""The meta-gradient itself: K differentiable inner updates, outer losses on fresh batches.

Everything here is generic over an :class:`InnerAgent`, four pure functions (the A2C agent of
``npigym.agents.actor_critic`` in :mod:`npigym.meta_gradient.a2c`, the paper's toy agent in
:mod:`npigym.meta_gradient.toy`):

- ``rollout(params, actor, key) -> (actor, batch)`` collects a batch with ``params``;
- ``update(params, opt_state, batch, hyper) -> (params, opt_state, metrics)`` is one inner
  optimizer step, differentiable with respect to ``hyper``;
- ``outer_loss(params, old_params, batch, hyper) -> (loss, metrics)`` scores ``params`` on a
  batch they collected, with the fixed outer hyperparameters (``old_params`` for STAC's KL);
- ``batch_stats(batch) -> metrics`` counts the batch's finished episodes.

The meta-loss (online cross-validation, Xu et al. 2018) unrolls K inner updates from
``theta_0``: update k learns from a batch collected by ``theta_{k-1}`` and, when its outer loss
is scored, a *fresh* batch collected by ``theta_k`` scores it. The meta-loss is
``sum_k w_k L_out(theta_k)`` (:func:`~npigym.meta_gradient.params.mixing_weights`: the K-step
meta-gradient, or a mixture of the 1..K-step ones from the same unroll), and ``jax.grad`` with
respect to ``eta`` differentiates through every inner update. Batches carry no gradient:
rollouts see stop-gradiented parameters (the data distribution's dependence on ``eta`` is
ignored, as in every practical meta-gradient agent), so the rollouts are not differentiated at
all. Each inner update runs under ``jax.checkpoint`` inside a ``lax.scan``: the backward pass
recomputes its activations, so memory grows with K only by one parameter set, optimizer state
and batch per step.

The agent continues from ``theta_K`` (and the envs from where the last rollout left them), and
the meta-parameters take one clipped Adam step (tiny ``eps_root > 0``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from npigym.agents.actor_critic import HyperParams
from npigym.meta_gradient.config import MetaGradientConfig
from npigym.meta_gradient.params import MetaParams, hyperparams, mixing_weights

sg = jax.lax.stop_gradient


class InnerAgent(NamedTuple):
    """The pure functions of an agent whose update the meta-gradient differentiates (see the
    module docstring). ``init(key) -> (params, opt_state, actor)``; ``num_envs`` and
    ``rollout_length`` say how many env steps one rollout takes."""

    init: Callable[[chex.PRNGKey], Tuple[Any, Any, Any]]
    rollout: Callable[..., Tuple[Any, Any]]
    update: Callable[..., Tuple[Any, Any, Dict[str, chex.Array]]]
    outer_loss: Callable[..., Tuple[chex.Array, Dict[str, chex.Array]]]
    batch_stats: Callable[[Any], Dict[str, chex.Array]]
    num_envs: int
    rollout_length: int


class MetaLossAux(NamedTuple):
    """What the meta-loss returns besides the loss: where the agent continues, and metrics."""

    params: Any
    opt_state: Any
    actor: Any
    metrics: Dict[str, chex.Array]


def scores_each_step(config: MetaGradientConfig) -> bool:
    """Whether the unroll scores an outer loss after every inner update (mixing, K > 1) or only
    after the last one."""
    return config.mixing != "none" and config.meta_steps > 1


def rollouts_per_meta_update(config: MetaGradientConfig) -> Tuple[int, int]:
    """``(inner, outer)`` rollouts of one meta update."""
    return config.meta_steps, config.meta_steps if scores_each_step(config) else 1


def make_meta_loss(agent: InnerAgent, config: MetaGradientConfig
                   ) -> Callable[..., Tuple[chex.Array, MetaLossAux]]:
    """``meta_loss(eta, base_hyper, params, opt_state, actor, key) -> (loss, aux)``.

    ``jax.grad(meta_loss, has_aux=True)`` is the meta-gradient with respect to ``eta``
    (a dict of unconstrained meta-parameters, see :mod:`npigym.meta_gradient.params`).
    ``base_hyper`` holds the fixed hyperparameters (frozen ones, outer discount and lambda).
    """
    weights = jnp.asarray(mixing_weights(config))
    K = config.meta_steps
    each = scores_each_step(config)
    update = jax.checkpoint(agent.update) if config.remat else agent.update
    outer_loss = jax.checkpoint(agent.outer_loss) if config.remat else agent.outer_loss

    def score(params, old_params, actor, key, hyper):
        actor, batch = agent.rollout(sg(params), actor, key)
        loss, metrics = outer_loss(params, sg(old_params), batch, hyper)
        return actor, loss, {**metrics, **prefix("outer_", agent.batch_stats(batch))}

    def meta_loss(eta: MetaParams, base_hyper: HyperParams, params, opt_state, actor,
                  key: chex.PRNGKey):
        hyper = hyperparams(eta, base_hyper, config)
        inner_keys, outer_keys = jnp.split(jax.random.split(key, 2 * K), 2)

        def body(carry, xs):
            params, opt_state, actor = carry
            inner_key, outer_key, w = xs
            actor, batch = agent.rollout(sg(params), actor, inner_key)
            new_params, opt_state, metrics = update(params, opt_state, batch, hyper)
            metrics = {**metrics, **agent.batch_stats(batch)}
            if each:
                actor, loss, outer_metrics = score(new_params, params, actor, outer_key, hyper)
                metrics = {**metrics, **outer_metrics, "weighted_outer_loss": w * loss}
            return (new_params, opt_state, actor), (None if each else params, metrics)

        (params, opt_state, actor), (history, metrics) = jax.lax.scan(
            body, (params, opt_state, actor), (inner_keys, outer_keys, weights))
        if each:
            loss = jnp.sum(metrics.pop("weighted_outer_loss"))
        else:
            # The policy before the last update, for the KL term: params of step K - 1.
            previous = jax.tree.map(lambda x: x[-1], history)
            actor, loss, outer_metrics = score(params, previous, actor, outer_keys[-1], hyper)
            metrics = {**metrics, **jax.tree.map(lambda x: x[None], outer_metrics)}
        metrics = pool_metrics(metrics)
        metrics["meta_loss"] = loss
        return loss, MetaLossAux(params, opt_state, actor, metrics)

    return meta_loss


def prefix(p: str, d: Dict[str, Any]) -> Dict[str, Any]:
    return {p + k: v for k, v in d.items()}


# Episode counters are summed over the rollouts of a meta update; other metrics are averaged.
SUMMED = ("episodes", "return_sum", "length_sum", "success_sum", "truncated", "reward_sum")


def pool_metrics(metrics: Dict[str, chex.Array]) -> Dict[str, chex.Array]:
    """Per-step metrics stacked on a leading axis -> one number each: sums for episode
    counters (inner and outer rollouts pooled under the plain names), means for the rest."""
    out = {}
    for k, v in metrics.items():
        if k in SUMMED:
            out[k] = jnp.sum(v) + jnp.sum(metrics.get("outer_" + k, 0))
        elif k.startswith("outer_") and k[len("outer_"):] in SUMMED:
            continue
        else:
            out[k] = jnp.mean(v)
    return out


def make_meta_optimizer(config: MetaGradientConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam with a tiny ``eps_root > 0`` (no 0 / 0 on a zero
    meta-gradient; small enough not to swamp meta-gradients of 1e-9, see
    :class:`MetaGradientConfig`)."""
    # The step size lives in the optimizer's state (inject_hyperparams), so a batch of
    # meta-learning rates can train in one vmapped program (see set_learning_rate).
    def build(learning_rate: chex.Array) -> optax.GradientTransformation:
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                           optax.adam(learning_rate, eps=config.adam_eps,
                                      eps_root=config.adam_eps_root))

    return optax.inject_hyperparams(build)(learning_rate=config.learning_rate)


def set_learning_rate(opt_state: Any, learning_rate: chex.Array) -> Any:
    """``opt_state`` of an ``optax.inject_hyperparams`` optimizer with its learning rate set."""
    value = jnp.asarray(learning_rate, opt_state.hyperparams["learning_rate"].dtype)
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": value})


def make_group_meta_gradients(meta_loss: Callable[..., Any], groups: int
                              ) -> Callable[..., MetaParams]:
    """``group_grads(eta, base_hyper, params, opt_state, actor, key) -> eta-shaped (G, ...)``:
    G meta-gradients from the same parameters on G disjoint groups of the envs (``jax.vmap``
    over groups; each group's batches are independent of the others'). The variance across
    groups estimates the variance of the meta-gradient estimator at B / G envs."""

    def grad_one(eta, base_hyper, params, opt_state, actor, key):
        return jax.grad(meta_loss, has_aux=True)(eta, base_hyper, params, opt_state, actor,
                                                 key)[0]

    def group_grads(eta, base_hyper, params, opt_state, actor, key):
        split = jax.tree.map(lambda x: x.reshape(groups, x.shape[0] // groups, *x.shape[1:]),
                             actor)
        return jax.vmap(grad_one, in_axes=(None, None, None, None, 0, 0))(
            eta, base_hyper, params, opt_state, split, jax.random.split(key, groups))

    return group_grads


def variance_metrics(grads: MetaParams) -> Dict[str, chex.Array]:
    """Across-sample statistics of stacked meta-gradients (leading sample axis): per
    hyperparameter unbiased variance and mean, and the total variance (sum over
    hyperparameters, the trace of the covariance)."""
    out = {}
    total = 0.0
    for name, g in grads.items():
        var = jnp.var(g, axis=0, ddof=1)
        out[f"meta_grad_var_{name}"] = var
        total = total + var
    out["meta_grad_var"] = jnp.asarray(total, jnp.float32)
    return out


def meta_gradient_samples(meta_loss: Callable[..., Any], eta: MetaParams,
                          base_hyper: HyperParams, params: Any, opt_state: Any, actors: Any,
                          keys: chex.Array) -> MetaParams:
    """Independent meta-gradient samples at fixed ``(eta, params)``: one per row of ``keys``
    (``[N, 2]``) and of ``actors`` (env states with a leading ``N`` axis), evaluated
    sequentially with ``lax.map`` to bound memory. For variance benchmarks."""

    def one(xs):
        actor, key = xs
        return jax.grad(meta_loss, has_aux=True)(eta, base_hyper, params, opt_state, actor,
                                                 key)[0]

    return jax.lax.map(one, (actors, keys))


def summarize_variance(grads: MetaParams) -> Dict[str, float]:
    """Host-side summary of :func:`meta_gradient_samples`: mean, variance and the
    variance-to-squared-mean ratio (noise per unit of signal) per hyperparameter."""
    out = {}
    for name, g in grads.items():
        g = np.asarray(g, np.float64)
        out[f"{name}_mean"] = float(g.mean())
        out[f"{name}_var"] = float(g.var(ddof=1))
        out[f"{name}_snr"] = float(abs(g.mean()) / (g.std(ddof=1) + 1e-30))
    return out
