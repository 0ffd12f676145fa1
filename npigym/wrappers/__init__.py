"""Wrappers: auto-reset for JAX loops, and adapters to gymnasium and dm_env."""

from npigym.wrappers.auto_reset import AutoResetWrapper, VmapAutoResetWrapper
from npigym.wrappers.dm_env_wrapper import DmEnvWrapper
from npigym.wrappers.gymnasium_env import (
    GymnasiumEnv,
    GymnasiumVectorEnv,
    make_gymnasium_env,
    make_gymnasium_vector_env,
)

__all__ = [
    "AutoResetWrapper",
    "DmEnvWrapper",
    "GymnasiumEnv",
    "GymnasiumVectorEnv",
    "VmapAutoResetWrapper",
    "make_gymnasium_env",
    "make_gymnasium_vector_env",
]
