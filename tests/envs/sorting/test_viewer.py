"""Rendering: text with pointer markers and the call stack, RGB frames, animations."""

import jax
import numpy as np
import pytest

from npigym.envs.sorting import ArrayGenerator, Sorting, SortingViewer
from tests.envs.sorting.expert_runner import key_for


@pytest.fixture(scope="module")
def states(fixed_env, fixed_jitted):
    """The first states of the expert's episode on [3, 1, 2, 0]: into BUBBLE, PTR 2 RIGHT, BSTEP."""
    env, (reset, step, expert) = fixed_env, fixed_jitted
    state, _ = reset(key_for(env, [3, 1, 2, 0]))
    out = [state]
    for _ in range(3):
        state, _ = step(state, expert(state))
        out.append(state)
    return env, out


def test_viewer__text_shows_the_array_pointers_and_stack(states):
    env, out = states
    text = env.render(out[-1])
    lines = text.splitlines()
    assert lines[0].startswith("4 values, unsorted") and "step 3/" in lines[0]
    assert lines[1] == "BUBBLESORT  [1 calls]" and lines[2] == "  BUBBLE  [2 calls]"
    assert lines[3] == "    BSTEP  [0 calls]  <- acting"
    assert lines[5] == "  array   3 1 2 0"
    # Markers sit under the cells: pointer 1 on 3, pointer 2 on 1, pointer 3 on 3.
    assert lines[6].startswith("  P1      ^") and lines[7].startswith("  P2        ^")
    assert lines[8].startswith("  P3      ^") and lines[8].endswith("at 0")
    assert env.render(out[0], mode="human") is None


def test_viewer__long_arrays_are_windowed():
    viewer_env = Sorting(generator=ArrayGenerator([list(range(100))]))
    state, _ = jax.jit(viewer_env.reset)(jax.random.PRNGKey(0))
    text = SortingViewer(viewer_env.library, max_columns=10).render_text(state)
    assert "100 values, sorted" in text and "…" in text
    with pytest.raises(ValueError, match="max_columns"):
        SortingViewer(viewer_env.library, max_columns=0)


def test_viewer__rgb_and_animation(states, tmp_path):
    env, out = states
    frame = env.render(out[-1], mode="rgb_array")
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] > 100 and frame.shape[1] > 100 and frame.std() > 0
    path = tmp_path / "sort.gif"
    env.animate(out, save_path=str(path), interval=100)
    assert path.stat().st_size > 0
