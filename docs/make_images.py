"""Render the README's pictures: each task mid-way through an expert episode.

    .venv/bin/python docs/make_images.py
"""

import os

import jax
import numpy as np
from PIL import Image

import npigym

HERE = os.path.dirname(os.path.abspath(__file__))

# (env id, kwargs, expert steps to take before the picture, file name)
PICTURES = [
    ("Addition-v0", {"generator": "problem:9876+5432"}, 19, "addition.png"),
]


def _kwargs(kwargs):
    out = dict(kwargs)
    if str(out.get("generator", "")).startswith("problem:"):
        from npigym.envs.addition import ProblemGenerator

        a, b = out["generator"].split(":")[1].split("+")
        out["generator"] = ProblemGenerator([(int(a), int(b))])
    return out


def main() -> None:
    os.makedirs(os.path.join(HERE, "images"), exist_ok=True)
    for env_id, kwargs, steps, name in PICTURES:
        env = npigym.make(env_id, **_kwargs(kwargs))
        state, _ = env.reset(jax.random.PRNGKey(0))
        step, expert = jax.jit(env.step), jax.jit(env.expert_action)
        for _ in range(steps):
            state, _ = step(state, expert(state))
        path = os.path.join(HERE, "images", name)
        Image.fromarray(np.asarray(env.render(state, "rgb_array"))).save(path, optimize=True)
        print("wrote", path)


if __name__ == "__main__":
    main()
