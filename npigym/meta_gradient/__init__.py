"""Meta-gradient hyperparameter tuning: one-step, debiased (outer value), multi-step and mixed.

Read in this order:

1. :mod:`~npigym.meta_gradient.config`: :class:`MetaGradientConfig` (estimator, K, mixing,
   meta-optimizer, which hyperparameters are learned and their bounds) and its checks.
2. :mod:`~npigym.meta_gradient.params`: meta-parameters ``eta`` and the sigmoid map into each
   hyperparameter's bounds; the mixing weights.
3. :mod:`~npigym.meta_gradient.core`: the meta-loss (K differentiable inner updates, outer
   losses on fresh batches, rematerialised), the meta-optimizer, variance estimators.
4. :mod:`~npigym.meta_gradient.a2c`: the actor-critic as the inner agent, and the biased /
   debiased outer loss (with STAC's optional KL term).
5. :mod:`~npigym.meta_gradient.trainer`: ``init`` / ``train`` in the shape of
   ``actor_critic.make_train``, with the diagnostics logged every update.
6. :mod:`~npigym.meta_gradient.toy`: the debiasing paper's toy agent on ``DiscountingChain-v0``.
"""

from npigym.meta_gradient.config import (
    ESTIMATORS,
    LEARNABLE,
    MIXINGS,
    MetaGradientConfig,
    check_meta_config,
)
from npigym.meta_gradient.core import (
    InnerAgent,
    make_meta_loss,
    make_meta_optimizer,
    meta_gradient_samples,
)
from npigym.meta_gradient.params import hyperparams, init_meta_params, mixing_weights
from npigym.meta_gradient.trainer import (
    MetaTrainer,
    MetaTrainState,
    make_a2c_meta_train,
    make_meta_train,
)

__all__ = [
    "ESTIMATORS",
    "LEARNABLE",
    "MIXINGS",
    "InnerAgent",
    "MetaGradientConfig",
    "MetaTrainState",
    "MetaTrainer",
    "check_meta_config",
    "hyperparams",
    "init_meta_params",
    "make_a2c_meta_train",
    "make_meta_loss",
    "make_meta_optimizer",
    "make_meta_train",
    "meta_gradient_samples",
    "mixing_weights",
]
