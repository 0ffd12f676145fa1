"""NPI's grade-school addition (``Addition-v0``) on the program machine."""

from npigym.envs.addition.env import Addition
from npigym.envs.addition.generator import (
    AdditionGenerator,
    ProblemGenerator,
    RandomGenerator,
)
from npigym.envs.addition.types import FullView, Scratchpad, Snapshot
from npigym.envs.addition.viewer import AdditionViewer

__all__ = [
    "Addition",
    "AdditionGenerator",
    "AdditionViewer",
    "FullView",
    "ProblemGenerator",
    "RandomGenerator",
    "Scratchpad",
    "Snapshot",
]
