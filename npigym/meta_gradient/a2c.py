"""The actor-critic of ``npigym.agents.actor_critic`` as an :class:`InnerAgent`, and its outer
loss (biased or debiased).

The inner update is ``actor_critic.make_update`` unchanged: its loss already keeps the
discount's and lambda's paths (values stop-gradiented, returns not) and trains the outer value
head at the outer discount. The outer loss is the policy gradient at the fixed outer discount
and lambda on a batch collected by the updated policy:

    L_out = -mean(A' log pi_theta'(a|s)) - c_H' mean(H[pi_theta']) + c_KL KL(pi_theta' || pi_theta)

with ``A' = G^{gamma', lambda'} - v(s)``, both values (baseline and bootstrap) from the inner
head (``estimator="biased"``, the usual meta-gradient) or from the outer head
(``"debiased"``). ``A'`` is a constant (the outer objective's gradient is the policy gradient);
the meta-gradient flows through ``log pi_theta'``, i.e. through the inner update.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import chex
import jax
import jax.numpy as jnp

from npigym.agents.actor_critic import (
    A2CConfig,
    HyperParams,
    Rollout,
    batch_lambda_returns,
    init_actor,
    make_env,
    make_optimizer,
    make_rollout,
    make_update,
)
from npigym.agents.networks import Network
from npigym.meta_gradient.config import MetaGradientConfig
from npigym.meta_gradient.core import InnerAgent

sg = jax.lax.stop_gradient


def batch_stats_fn(root_id: int):
    """``batch_stats(rollout)``: sums of the finished whole-task episodes' statistics (the keys
    ``actor_critic.summarize`` pools)."""

    def batch_stats(batch: Rollout) -> Dict[str, chex.Array]:
        whole = batch.last & (batch.episode_program == root_id)
        return dict(episodes=jnp.sum(whole),
                    return_sum=jnp.sum(jnp.where(whole, batch.episode_return, 0.0)),
                    length_sum=jnp.sum(jnp.where(whole, batch.episode_length, 0)
                                       ).astype(jnp.float32),
                    success_sum=jnp.sum(whole & batch.episode_success),
                    truncated=jnp.sum(batch.truncated), reward_sum=jnp.sum(batch.reward))

    return batch_stats


def make_outer_loss(network: Network, a2c: A2CConfig, meta: MetaGradientConfig):
    """``outer_loss(params, old_params, batch, hyper) -> (loss, metrics)`` (see the module
    docstring). Metrics: ``meta_advantage`` (mean outer advantage, Bonnet et al.'s bias
    diagnostic: about 0 for an unbiased outer critic), ``meta_pg_loss``, ``meta_entropy``,
    ``meta_kl`` (a sample estimate of KL(pi_new || pi_old))."""
    frame_credit = a2c.credit == "frame"
    debiased = meta.estimator == "debiased"

    def returns(r, disc, v, v_boot, batch: Rollout, lam):
        return batch_lambda_returns(r, disc, v, v_boot, batch, lam, frame_credit,
                                    network.info.max_depth)

    def log_probs(params, batch: Rollout):
        pad = jnp.zeros_like(batch.action[:1])
        out = network.unroll(params, batch.core, batch.obs, batch.first,
                             jnp.concatenate([batch.action, pad]), batch.invalid)
        return out

    def outer_loss(params, old_params, batch: Rollout, hyper: HyperParams
                   ) -> Tuple[chex.Array, Dict[str, chex.Array]]:
        out = log_probs(params, batch)
        log_prob, entropy = out.policy.log_prob[:-1], out.policy.entropy[:-1]
        if debiased:
            value, boot = out.outer_value, batch.boot_outer_value
        else:
            value, boot = out.value, batch.boot_value
        value = sg(value)
        continues = 1.0 - batch.frame_end.astype(jnp.float32) if frame_credit else 1.0
        g, valid = returns(batch.reward, sg(hyper.outer_discount) * batch.discount * continues,
                           value, sg(boot), batch, sg(hyper.outer_lambda))
        w = (valid & ~batch.forced).astype(jnp.float32)
        n = jnp.maximum(jnp.sum(w), 1.0)

        def mean(x):
            return jnp.sum(w * x) / n

        advantage = sg(g - value[:-1])
        pg_loss = -mean(advantage * log_prob)
        entropy_mean = mean(entropy)
        loss = pg_loss - meta.outer_entropy_cost * entropy_mean
        metrics = dict(meta_pg_loss=pg_loss, meta_entropy=entropy_mean,
                       meta_advantage=mean(advantage))
        if meta.kl_cost > 0:
            # STAC's KL(pi_new || pi_old) regulariser. The network exposes the log-probability
            # of the taken actions, not the full distributions (program heads are
            # autoregressive), so this is a sample estimate: the batch was drawn from pi_new,
            # and grad 0.5 (log pi_new - log pi_old)^2 = (log pi_new - log pi_old) grad log
            # pi_new, whose expectation under pi_new is exactly grad KL(pi_new || pi_old).
            old = sg(log_probs(sg(old_params), batch).policy.log_prob[:-1])
            log_ratio = log_prob - old
            loss = loss + meta.kl_cost * 0.5 * mean(log_ratio ** 2)
            metrics["meta_kl"] = sg(mean(log_ratio))
        metrics["meta_outer_loss"] = loss
        return loss, metrics

    return outer_loss


def make_a2c_inner_agent(env: Any, network: Network, a2c: A2CConfig,
                         meta: MetaGradientConfig) -> Tuple[InnerAgent, Any]:
    """The actor-critic's pieces for ``env`` as an :class:`InnerAgent`; also returns the
    auto-reset training env."""
    if a2c.credit == "frame" and not network.info.is_program_env:
        raise ValueError("credit='frame' needs a program-machine env (its observation's depth "
                         "says which frame decides); use credit='episode'")
    if a2c.learning_rate_decay_steps:
        raise ValueError("a2c.learning_rate_decay_steps is not supported with meta-gradients "
                         "(meta-learn the learning rate instead: meta.learn=[learning_rate])")
    if getattr(env, "unlock_threshold", 0.0) > 0:
        raise ValueError("curriculum_unlock is not supported with meta-gradients (their "
                         "trainer does not report the programs' success to the curriculum)")
    train_env = make_env(env)
    optimizer = make_optimizer(a2c)
    library = getattr(getattr(env, "unwrapped", env), "library", None)
    root_id = library.root if library is not None else 0

    def init(key: chex.PRNGKey):
        env_key, net_key = jax.random.split(key)
        actor = init_actor(train_env, network, env_key, a2c.num_envs)
        params = network.init(net_key, actor.obs, actor.first)
        return params, optimizer.init(params), actor

    agent = InnerAgent(init=init, rollout=make_rollout(train_env, network, a2c),
                       update=make_update(network, a2c, optimizer),
                       outer_loss=make_outer_loss(network, a2c, meta),
                       batch_stats=batch_stats_fn(root_id), num_envs=a2c.num_envs,
                       rollout_length=a2c.rollout_length)
    return agent, train_env
