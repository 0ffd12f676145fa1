"""Rendering: text with pointers and call stack, RGB images, GIFs."""

import jax
import numpy as np
import pytest

from npigym.envs.addition import Addition, ProblemGenerator


@pytest.fixture(scope="module")
def episode():
    env = Addition(generator=ProblemGenerator([(96, 125)]))
    state, timestep = env.reset(jax.random.PRNGKey(0))
    step, expert = jax.jit(env.step), jax.jit(env.expert_action)
    states = [state]
    for _ in range(3):  # ADD1, WRITE(OUT, 1), CARRY
        state, timestep = step(state, expert(state))
        states.append(state)
    return env, states


def test_render_text__shows_the_pad_pointers_and_call_stack(episode):
    env, states = episode
    text = env.render(states[-1])
    assert "96 + 125 = 221" in text
    lines = text.splitlines()
    assert lines[1].startswith("ADD") and lines[2].strip().startswith("ADD1")
    assert lines[3].startswith("    CARRY") and "<- acting" in lines[3]
    out_row = next(line for line in lines if line.strip().startswith("OUT"))
    assert "[1]" in out_row  # the OUT pointer sits on the digit just written


def test_render_text__windows_wide_pads():
    env = Addition(min_digits=500, max_digits=500)
    state, _ = jax.jit(env.reset)(jax.random.PRNGKey(0))
    text = env.render(state, "ansi")
    assert "500-digit addition" in text
    assert max(len(line) for line in text.splitlines()) < 200


def test_render_rgb_and_human(episode, capsys):
    env, states = episode
    image = env.render(states[-1], "rgb_array")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] > 100 and image.shape[1] > 300
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 5
    assert env.render(states[-1], "human") is None
    assert "IN1" in capsys.readouterr().out
    with pytest.raises(ValueError, match="render mode"):
        env.render(states[-1], "video")


def test_animate__writes_a_gif(episode, tmp_path):
    env, states = episode
    path = tmp_path / "episode.gif"
    env.animate(states, save_path=str(path), interval=100)
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.n_frames == len(states)
