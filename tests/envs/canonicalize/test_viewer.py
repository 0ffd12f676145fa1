"""Text and image rendering of the canonicalization task, and its animation."""

from __future__ import annotations

import numpy as np
from PIL import Image

from npigym.envs.canonicalize import constants as c
from npigym.envs.canonicalize.viewer import ascii_image, azimuth_degrees


def call(program, arg=0):
    return np.asarray([program, arg, 0, 0], np.int32)


def test_text_render_shows_pose_target_stack_and_thumbnail(problem_env, capsys):
    env = problem_env.env
    state, _ = problem_env.start(0)  # -45, 45 -> 0, 15
    text = env.render(state)
    assert "pose az -45° el +45°  ->  target az +0° el +15°" in text
    assert "step 0/" in text and "GOTO  [0 calls]  <- acting" in text
    assert "(seen, code 0x" in text and "moves L0 R0 U0 D0" in text
    thumbnail = [line for line in text.splitlines() if line.startswith("  |")]
    assert len(thumbnail) == 4 and all(len(line) == 2 + 1 + 8 + 1 for line in thumbnail)
    for action in (call(c.HGOTO), call(c.RGOTO), call(c.ACT, c.RIGHT)):
        state, _ = problem_env.step(state, action)
    text = env.render(state)
    assert "pose az -30° el +45°" in text and "moves L0 R1 U0 D0" in text
    assert "    RGOTO  [1 calls]  <- acting" in text
    assert env.render(state, "human") is None
    assert "RGOTO" in capsys.readouterr().out


def test_rgb_render_and_animation(problem_env, tmp_path):
    env = problem_env.env
    _, states, _ = problem_env.run_expert(0)
    frame = env.render(states[0][0], "rgb_array")
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] >= 300 and (frame < 128).any() and (frame == 255).any()
    path = tmp_path / "canonicalize.gif"
    env.animate([s for s, _ in states[:4]], str(path), interval=100)
    with Image.open(path) as gif:
        assert gif.n_frames == 4


def test_ascii_image_and_degrees():
    image = np.zeros((16, 16), np.float32)
    image[4:8, 2:6] = 1.0
    lines = ascii_image(image)
    assert len(lines) == 8 and {len(line) for line in lines} == {16}
    assert lines[2][2:6] == "@@@@" and lines[0] == " " * 16
    assert len(ascii_image(np.zeros((64, 64)), max_columns=32)) == 16
    assert [azimuth_degrees(i) for i in (0, 5, 12, 19, 23)] == [0, 75, -180, -75, -15]
