"""The dot product (``DotProduct-v0``): ADD -> MUL -> DOT, three generations of skills."""

from npigym.envs.dot_product.env import DotProduct
from npigym.envs.dot_product.generator import (
    DotProductGenerator,
    RandomGenerator,
    VectorGenerator,
)

__all__ = ["DotProduct", "DotProductGenerator", "RandomGenerator", "VectorGenerator"]
