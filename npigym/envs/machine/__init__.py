"""The program machine: one mechanism (call stack, program library, primitive / agent / builtin /
inline programs) that serves every task."""

from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.generator import Generator
from npigym.envs.machine.library import (
    AGENT,
    BUILTIN,
    INLINE,
    PRIMITIVE,
    RETURN,
    RETURN_ID,
    Arg,
    Program,
    ProgramLibrary,
)
from npigym.envs.machine.types import CallStack, Frame, Observation, State

__all__ = [
    "AGENT",
    "BUILTIN",
    "INLINE",
    "PRIMITIVE",
    "RETURN",
    "RETURN_ID",
    "Arg",
    "CallStack",
    "Frame",
    "Generator",
    "Observation",
    "Program",
    "ProgramEnv",
    "ProgramLibrary",
    "State",
]
