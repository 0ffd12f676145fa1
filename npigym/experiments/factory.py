"""Environments, networks and trainers from a :class:`TrainConfig`."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from npigym.agents.actor_critic import Trainer, make_train
from npigym.agents.curriculum import SubprogramStartWrapper
from npigym.agents.networks import Network, make_network
from npigym.agents.size_curriculum import SizeCurriculumWrapper
from npigym.experiments.config import ConfigError, TrainConfig


def make_env(config: TrainConfig, size: Optional[int] = None, whole_task: bool = False) -> Any:
    """The configured environment: npigym's registry first, then Jumanji's.

    Args:
        config: the training config (``env``, ``env_kwargs``, ``skills``, ``curriculum``).
        size: set the env's size knobs (``min_digits`` / ``max_digits``, ...) to this value;
            any fixed ``time_limit`` is dropped so the default limit scales with the instance.
        whole_task: the task as posed, for evaluation: no curriculum wrappers (program or
            size) and no ``train_env_kwargs``.

    Raises:
        ConfigError: for an unknown id, bad keyword arguments, a size on an env without size
            knobs, or a skill that cannot be loaded or bound.
    """
    import jumanji

    import npigym

    kwargs = dict(config.env_kwargs)
    if not whole_task:
        kwargs.update(config.train_env_kwargs)
    if config.skills:
        kwargs["skills"] = _load_skills(config.skills)
    try:
        if config.env in npigym.registered_environments():
            if size is not None:
                knobs = getattr(npigym.spec(config.env).load(), "size_knobs", ())
                if not knobs:
                    raise ConfigError(f"{config.env} has no size knobs to evaluate sizes with")
                kwargs.update({k: int(size) for k in knobs})
                kwargs.pop("time_limit", None)
            env = npigym.make(config.env, **kwargs)
        elif config.env in jumanji.registered_environments():
            if config.skills:
                raise ConfigError(f"skills bind to programs; {config.env} is a Jumanji env "
                                  "without a program library")
            if size is not None:
                raise ConfigError(f"{config.env} is a Jumanji env without size knobs")
            env = jumanji.make(config.env, **kwargs)
        else:
            known = [*npigym.registered_environments(), *sorted(jumanji.registered_environments())]
            raise ConfigError(f"unknown env {config.env!r}; known: {', '.join(known)}")
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{config.env}: {e}") from None
    if config.curriculum and not whole_task:
        if not hasattr(env, "library"):
            raise ConfigError("curriculum needs a program-machine env")
        try:
            env = SubprogramStartWrapper(env, config.curriculum,
                                         max_skip=config.curriculum_max_skip,
                                         max_forced=config.curriculum_max_forced,
                                         unlock_threshold=config.curriculum_unlock,
                                         starts=config.curriculum_starts)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"curriculum: {e}") from None
    if config.size_curriculum and not whole_task:
        try:
            env = SizeCurriculumWrapper(env, start=config.size_curriculum_start,
                                        factor=config.size_curriculum_factor,
                                        step=config.size_curriculum_step,
                                        threshold=config.size_curriculum_threshold,
                                        decay=config.size_curriculum_decay)
        except ValueError as e:
            raise ConfigError(f"size_curriculum: {e}") from None
    return env


def _load_skills(refs: Any) -> Dict[str, Any]:
    """``{program: Skill}`` of the config's ``{program: skill reference}``."""
    from npigym.skills import SkillError, load

    try:
        return {program: load(ref) for program, ref in refs.items()}
    except SkillError as e:
        raise ConfigError(f"skills: {e}") from None


def make_agent(config: TrainConfig, env: Any) -> Tuple[Network, Trainer]:
    """The network and the actor-critic's trainer for ``env`` (with meta-gradient tuning of its
    hyperparameters when ``config.meta.estimator`` is not ``"none"``)."""
    network = make_network(env, config.network)
    try:
        if config.meta.enabled:
            from npigym.meta_gradient import make_a2c_meta_train

            return network, make_a2c_meta_train(env, network, config.a2c, config.meta)
        trainer = make_train(env, network, config.a2c)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return network, trainer
