"""Long multiplication (``Multiplication-v0``): a composition task over Addition's ADD."""

from npigym.envs.multiplication.env import Multiplication
from npigym.envs.multiplication.generator import (
    MultiplicationGenerator,
    ProblemGenerator,
    RandomGenerator,
)

__all__ = ["Multiplication", "MultiplicationGenerator", "ProblemGenerator", "RandomGenerator"]
