"""The npigym command: list, play, traces, and its errors."""

import numpy as np
import pytest

from npigym import cli, traces


def test_cli__list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "Addition-v0" in out and "Addition-flat-v0" in out


def test_cli__list_verbose_shows_libraries(capsys):
    assert cli.main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    assert "MOVE_PTR" in out
    assert "DiscountingChain-v0" in out and "no program library" in out


def test_cli__play_shows_the_expert_step_by_step(capsys, tmp_path):
    gif = tmp_path / "play.gif"
    code = cli.main(["play", "Addition-v0", "--digits", "2", "--seed", "1", "--no-clear",
                     "--gif", str(gif)])
    out = capsys.readouterr().out
    assert code == 0
    assert "ADD1" in out and "  WRITE(OUT," in out and "solved in" in out
    assert "IN1" in out  # the pad is drawn after each step
    assert gif.stat().st_size > 1000


def test_cli__play_compact_with_options(capsys):
    assert cli.main(["play", "Addition-v0", "--digits", "1", "--compact", "--no-clear",
                     "reward=dense"]) == 0
    out = capsys.readouterr().out
    assert "postcondition holds" in out and "\n  IN1 " not in out  # calls only, no pad
    assert not out.startswith("start")


def test_cli__traces_writes_a_file(capsys, tmp_path):
    path = tmp_path / "t.npz"
    assert cli.main(["traces", "Addition-v0", "-n", "5", "-o", str(path), "--digits", "3"]) == 0
    assert "5 episodes" in capsys.readouterr().out
    data = traces.load(str(path))
    assert data.num_episodes == 5 and data.success.all()
    assert np.all(data.observation["program"] >= 3)


@pytest.mark.parametrize("argv, message", [
    (["play", "Adition-v0"], "Did you mean 'Addition-v0'"),
    (["play", "Addition-v0", "max_digit=3"], "did you mean 'max_digits'"),
    (["play", "Addition-v0", "--digits", "0"], "max_digits must be a positive int"),
    (["play", "Addition-flat-v0"], "no step-by-step expert"),
    (["traces", "Addition-flat-v0", "-n", "2"], "hierarchical"),
    (["play", "Addition-v0", "=3"], "key=value"),
])
def test_cli__bad_input_exits_with_a_message(argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert message in str(exit_info.value)


def test_cli__parse_overrides():
    assert cli.parse_overrides(["max_digits=5", "reward=dense", "modes={'ADD1': 'builtin'}"]) == {
        "max_digits": 5, "reward": "dense", "modes": {"ADD1": "builtin"}}
