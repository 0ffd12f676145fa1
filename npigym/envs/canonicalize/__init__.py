"""NPI's third task: bring a rendered 3-D car model to a canonical viewpoint."""

from npigym.envs.canonicalize.env import Canonicalize
from npigym.envs.canonicalize.generator import (
    CanonicalizeGenerator,
    Problem,
    ProblemGenerator,
    RandomGenerator,
)
from npigym.envs.canonicalize.render import render_view
from npigym.envs.canonicalize.types import FullView, LocalView, Scene, Snapshot
from npigym.envs.canonicalize.viewer import CanonicalizeViewer

__all__ = [
    "Canonicalize",
    "CanonicalizeGenerator",
    "CanonicalizeViewer",
    "FullView",
    "LocalView",
    "Problem",
    "ProblemGenerator",
    "RandomGenerator",
    "Scene",
    "Snapshot",
    "render_view",
]
