"""Wrappers: auto-reset for JAX loops, and adapters to gymnasium, dm_env and gymnax's API."""

from npigym.wrappers.auto_reset import AutoResetWrapper, VmapAutoResetWrapper
from npigym.wrappers.dm_env_wrapper import DmEnvWrapper
from npigym.wrappers.gymnasium_env import (
    GymnasiumEnv,
    GymnasiumVectorEnv,
    make_gymnasium_env,
    make_gymnasium_vector_env,
)
from npigym.wrappers.gymnax import GymnaxEnv

__all__ = [
    "AutoResetWrapper",
    "DmEnvWrapper",
    "GymnasiumEnv",
    "GymnasiumVectorEnv",
    "GymnaxEnv",
    "VmapAutoResetWrapper",
    "make_gymnasium_env",
    "make_gymnasium_vector_env",
]
