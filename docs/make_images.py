"""Render the README's pictures: each task part-way through an expert episode.

    .venv/bin/python docs/make_images.py
"""

import os

import jax
import numpy as np
from PIL import Image

import npigym

HERE = os.path.dirname(os.path.abspath(__file__))


def pictures():
    """(env, expert steps to take before the picture, file name) per picture."""
    from npigym.envs.addition import ProblemGenerator as AdditionProblems
    from npigym.envs.canonicalize import Problem
    from npigym.envs.canonicalize import ProblemGenerator as PoseProblems
    from npigym.envs.sorting import ArrayGenerator

    yield (npigym.make("Addition-v0", generator=AdditionProblems([(9876, 5432)])), 19,
           "addition.png")
    yield (npigym.make("Sorting-v0", generator=ArrayGenerator([[7, 2, 9, 4, 4, 1, 8]])), 40,
           "sorting.png")
    yield (npigym.make("Canonicalize-v0", image_size=64,
                       generator=PoseProblems([Problem(-60, 45, model=5)])), 4,
           "canonicalize.png")


def main() -> None:
    os.makedirs(os.path.join(HERE, "images"), exist_ok=True)
    for env, steps, name in pictures():
        state, _ = env.reset(jax.random.PRNGKey(0))
        step, expert = jax.jit(env.step), jax.jit(env.expert_action)
        for _ in range(steps):
            state, _ = step(state, expert(state))
        path = os.path.join(HERE, "images", name)
        Image.fromarray(np.asarray(env.render(state, "rgb_array"))).save(path, optimize=True)
        print("wrote", path)


if __name__ == "__main__":
    main()
