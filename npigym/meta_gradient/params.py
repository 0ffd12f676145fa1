"""Meta-parameters: unconstrained ``eta`` per learned hyperparameter, mapped into its bounds.

``h = low + (high - low) * sigmoid(eta)``; ``eta`` starts at the logit of the initial value.
Only learned hyperparameters have an ``eta``; the others are read from a base
:class:`~npigym.agents.actor_critic.HyperParams` and stop-gradiented, so ``jax.grad`` with
respect to ``eta`` sees exactly the learned ones.
"""

from __future__ import annotations

from typing import Dict

import chex
import jax
import jax.numpy as jnp
import numpy as np

from npigym.agents.actor_critic import HyperParams
from npigym.meta_gradient.config import MetaGradientConfig

MetaParams = Dict[str, chex.Array]


def init_meta_params(config: MetaGradientConfig, hyper: HyperParams) -> MetaParams:
    """``{name: eta}`` for the learned hyperparameters, at the logit of their ``hyper`` values
    (which must lie strictly inside the bounds; :func:`check_meta_config` checks)."""
    eta = {}
    for name in config.learn:
        low, high = config.bounds(name)
        unit = (jnp.asarray(getattr(hyper, name), jnp.float32) - low) / (high - low)
        eta[name] = jnp.log(unit) - jnp.log1p(-unit)
    return eta


def hyperparams(eta: MetaParams, base: HyperParams, config: MetaGradientConfig) -> HyperParams:
    """The hyperparameters the inner update uses: learned ones from ``eta`` (differentiable),
    the rest from ``base`` behind a stop-gradient."""
    values = {}
    for name in HyperParams._fields:
        if name in eta:
            low, high = config.bounds(name)
            values[name] = low + (high - low) * jax.nn.sigmoid(eta[name])
        else:
            values[name] = jax.lax.stop_gradient(getattr(base, name))
    return HyperParams(**values)


def mixing_weights(config: MetaGradientConfig) -> np.ndarray:
    """(K,) static weights of the 1..K-step outer losses.

    ``"none"``: one-hot on K (the K-step meta-gradient); ``"uniform"``: 1/K each;
    ``"geometric"``: ``(1 - beta) beta**(k-1)`` for k < K and the tail ``beta**(K-1)`` on K,
    like the weights of a lambda-return. Every choice sums to 1 and is ``[1]`` for K = 1.
    """
    K = config.meta_steps
    if config.mixing == "none":
        w = np.zeros(K)
        w[-1] = 1.0
    elif config.mixing == "uniform":
        w = np.full(K, 1.0 / K)
    elif config.mixing == "geometric":
        beta = config.mixing_beta
        w = (1.0 - beta) * beta ** np.arange(K, dtype=np.float64)
        w[-1] = beta ** (K - 1)
    else:
        raise ValueError(f"unknown mixing {config.mixing!r}")
    return w.astype(np.float32)
