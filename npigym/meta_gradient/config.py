"""Configuration of the meta-gradient agents (:class:`MetaGradientConfig`) and its checks."""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Optional, Tuple

# Hyperparameters of ``npigym.agents.actor_critic.HyperParams`` that may be meta-learned. The
# outer ones (outer_discount, outer_lambda, outer_value_cost) define the meta-objective and are
# never learned.
LEARNABLE = ("discount", "gae_lambda", "entropy_cost", "value_cost", "learning_rate")
ESTIMATORS = ("none", "biased", "debiased")
MIXINGS = ("none", "uniform", "geometric")
MAX_META_STEPS = 100


@dataclasses.dataclass(frozen=True)
class MetaGradientConfig:
    """How the agent's hyperparameters tune themselves by meta-gradients.

    The inner optimizer is the ``a2c`` config's. The meta-gradient papers use RMSProp for the
    inner updates (Xu et al. 2018 and STAC inherit IMPALA's; Bonnet et al.'s Snake agent uses
    RMSProp 5e-4): set ``a2c.optimizer=rmsprop`` to follow them. Adam (the ``a2c`` default)
    also works, but it normalises each step by a running scale (its first steps are nearly
    invariant to a loss coefficient), so its meta-gradients are tiny: about 1e-9 .. 1e-7
    for every hyperparameter on the Discounting Chain, against ~1e-6 through RMSProp on
    Snake. With the default meta-optimizer settings below each meta update still moves a
    learned ``eta`` by up to about ``learning_rate`` in either case.

    Attributes:
        estimator: ``"none"`` (fixed hyperparameters), ``"biased"`` (the outer advantage uses the
            inner critic, trained with the meta-learned discount: the usual estimator) or
            ``"debiased"`` (every value in the outer loss comes from the outer value head,
            trained at the outer discount; Bonnet, Midgley & Laterre 2022).
        meta_steps: K, the inner updates the meta-gradient differentiates through (one meta
            update per K inner updates).
        mixing: ``"none"`` (the K-step meta-gradient: outer loss after the K-th update only),
            ``"uniform"`` or ``"geometric"`` (a convex combination of the 1..K-step outer losses
            of one unroll; with K = 1 every mixing is the one-step meta-gradient).
        mixing_beta: geometric weights ``w_k = (1 - beta) beta**(k-1)`` for ``k < K`` and
            ``beta**(K-1)`` for ``k = K`` (they sum to 1).
        learning_rate: the meta-optimizer's (Adam) step size: a meta update moves each ``eta``
            by up to about this much (exactly this much, times the sign of its meta-gradient,
            on the first), whatever the meta-gradient's scale.
        max_grad_norm: meta-gradients are clipped to this global norm.
        adam_eps_root: the meta-optimizer's epsilon inside the square root (> 0); its update
            is ``m / (sqrt(v + adam_eps_root) + adam_eps)``. Meta-gradients are tiny: about
            1e-6 with RMSProp inner updates on Snake, 1e-8 in the toy, 1e-9 with Adam inner
            updates (Adam's normalised step barely depends on a loss coefficient). Optax's
            usual 1e-8 floors the denominator at sqrt(1e-8) = 1e-4 and shrinks such steps
            by 1e2..1e5: the hyperparameters would not move. The default 1e-20 (floor 1e-10)
            only guards against 0 / 0 on a meta-gradient that is exactly 0. A tiny value is
            safe here because the meta-optimizer is never differentiated through: the
            infinite derivative of ``sqrt(v)`` at ``v = 0`` (optax #882) matters for the
            *inner* optimizer, whose ``a2c.adam_eps_root`` must stay at a normal size.
        adam_eps: the meta-optimizer's epsilon outside the square root (>= 0); optax's 1e-8
            would floor the denominator as above, so the default is 0.
        learn: which hyperparameters are meta-learned (a subset of :data:`LEARNABLE`); the
            others stay at their ``a2c`` values. Initial values are the ``a2c`` values.
        outer_discount, outer_lambda: discount and lambda of the outer objective and of the
            outer value head's target; ``None`` keeps ``a2c.outer_discount`` /
            ``a2c.outer_lambda``.
        outer_entropy_cost: weight of an entropy bonus in the outer loss (0 on Snake in the
            paper, 0.005 in its toy problem).
        kl_cost: weight of STAC's KL(pi_new || pi_old) on the outer batch (0: off).
        variance_groups: G >= 2 also computes, every meta update, G meta-gradients on G disjoint
            groups of the envs (same parameters, fresh batches) and logs their variance; 0: off
            (it costs about one more meta-gradient per update).
        remat: rematerialise each inner update in the backward pass (``jax.checkpoint``), so
            memory grows with K only by one parameter set and one batch per step.
        discount_bounds .. learning_rate_bounds: ``(low, high)``; a learned hyperparameter is
            ``low + (high - low) * sigmoid(eta)``.
    """

    estimator: str = "none"
    meta_steps: int = 1
    mixing: str = "none"
    mixing_beta: float = 0.5
    learning_rate: float = 3e-3
    max_grad_norm: float = 0.1
    adam_eps_root: float = 1e-20
    adam_eps: float = 0.0
    learn: Tuple[str, ...] = ("discount",)
    outer_discount: Optional[float] = None
    outer_lambda: Optional[float] = None
    outer_entropy_cost: float = 0.0
    kl_cost: float = 0.0
    variance_groups: int = 0
    remat: bool = True
    discount_bounds: Tuple[float, ...] = (0.0, 1.0)
    gae_lambda_bounds: Tuple[float, ...] = (0.0, 1.0)
    entropy_cost_bounds: Tuple[float, ...] = (0.0, 0.1)
    value_cost_bounds: Tuple[float, ...] = (0.0, 2.0)
    learning_rate_bounds: Tuple[float, ...] = (0.0, 1e-2)

    @property
    def enabled(self) -> bool:
        return self.estimator != "none"

    def bounds(self, name: str) -> Tuple[float, float]:
        """``(low, high)`` of hyperparameter ``name`` (``discount_bounds`` etc.)."""
        low, high = getattr(self, f"{name}_bounds")
        return float(low), float(high)


def check_meta_config(config: MetaGradientConfig, initial: Mapping[str, float],
                      num_envs: Optional[int] = None) -> None:
    """Check a meta-gradient config against the agent's initial hyperparameter values.

    Args:
        config: the meta-gradient settings.
        initial: ``{name: value}`` of every hyperparameter in :data:`LEARNABLE` (the ``a2c``
            config's values, where learned hyperparameters start).
        num_envs: the agent's number of envs (``variance_groups`` must divide it).

    Raises:
        ValueError: naming the key (``meta.<key>``) and what it should be.
    """

    def check(ok: bool, message: str) -> None:
        if not ok:
            raise ValueError(message)

    check(config.estimator in ESTIMATORS,
          f"meta.estimator must be one of {ESTIMATORS}, not {config.estimator!r}")
    check(1 <= config.meta_steps <= MAX_META_STEPS,
          f"meta.meta_steps must be in [1, {MAX_META_STEPS}], not {config.meta_steps}")
    check(config.mixing in MIXINGS, f"meta.mixing must be one of {MIXINGS}, "
                                    f"not {config.mixing!r}")
    check(0.0 <= config.mixing_beta < 1.0,
          f"meta.mixing_beta must be in [0, 1), not {config.mixing_beta}")
    check(config.learning_rate > 0 and math.isfinite(config.learning_rate),
          f"meta.learning_rate must be a positive number, not {config.learning_rate}")
    check(config.max_grad_norm > 0, f"meta.max_grad_norm must be > 0, "
                                    f"not {config.max_grad_norm}")
    check(config.adam_eps_root > 0 and math.isfinite(config.adam_eps_root),
          "meta.adam_eps_root must be > 0: with 0 (and adam_eps 0) a meta-gradient that is "
          "exactly 0 makes Adam's update 0 / 0 = NaN (a tiny value such as the default 1e-20 "
          f"is enough); got {config.adam_eps_root}")
    check(config.adam_eps >= 0 and math.isfinite(config.adam_eps),
          f"meta.adam_eps must be >= 0, not {config.adam_eps}")
    unknown = [n for n in config.learn if n not in LEARNABLE]
    check(not unknown, f"meta.learn: {unknown} cannot be meta-learned; choose from "
                       f"{LEARNABLE}")
    check(len(set(config.learn)) == len(config.learn), "meta.learn has duplicates")
    check(not config.enabled or len(config.learn) > 0,
          "meta.learn is empty: nothing to meta-learn (use meta.estimator=none)")
    for name in ("outer_discount", "outer_lambda"):
        value = getattr(config, name)
        check(value is None or 0.0 <= value <= 1.0,
              f"meta.{name} must be in [0, 1] (or None), not {value}")
    for name in ("outer_entropy_cost", "kl_cost"):
        value = getattr(config, name)
        check(value >= 0 and math.isfinite(value), f"meta.{name} must be >= 0, not {value}")
    check(config.variance_groups == 0 or config.variance_groups >= 2,
          f"meta.variance_groups must be 0 (off) or >= 2, not {config.variance_groups}")
    if num_envs is not None and config.variance_groups:
        check(num_envs % config.variance_groups == 0 and num_envs >= config.variance_groups,
              f"meta.variance_groups={config.variance_groups} must divide the number of envs "
              f"({num_envs})")
    for name in LEARNABLE:
        bounds = getattr(config, f"{name}_bounds")
        check(len(bounds) == 2 and all(math.isfinite(b) for b in bounds)
              and bounds[0] < bounds[1],
              f"meta.{name}_bounds must be [low, high] with low < high, not {list(bounds)}")
        if name in config.learn:
            low, high = bounds
            value = initial[name]
            check(low < value < high,
                  f"{name}={value} must lie strictly inside meta.{name}_bounds "
                  f"{list(bounds)} to be meta-learned (it is low + (high - low) * sigmoid(eta))")
