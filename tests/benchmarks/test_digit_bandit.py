"""benchmarks/digit_bandit.py: the triples it poses, and a tiny end-to-end run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import digit_bandit

import npigym
from npigym.envs.addition import constants as c


def test_add1_triples__every_column_add1_can_meet_with_its_digit() -> None:
    cells, digits = digit_bandit.add1_triples()
    assert cells.shape == (11 * 11 * 2 - 2, 4) and digits.shape == (cells.shape[0],)
    table = {tuple(cell): int(d) for cell, d in zip(cells.tolist(), digits)}
    blank, one = c.BLANK, 2  # cell codes: blank, and the digit d stored as d + 1
    assert table[(1 + 9, 1 + 8, one, blank)] == 8  # 9 + 8 + carry 1 = 18
    assert table[(blank, 1 + 2, blank, blank)] == 2  # a blank operand counts as 0
    assert table[(1 + 0, 1 + 0, blank, blank)] == 0
    assert (blank, blank, blank, blank) not in table  # an empty column: no ADD1
    assert np.all((cells[:, 3] == blank) & (digits >= 0) & (digits <= 9))


def test_smoke_run_writes_the_report(tmp_path: Path) -> None:
    env = npigym.make("Addition-v0", max_digits=5)
    obs = digit_bandit.add1_observation(env)
    assert int(obs.program) == c.ADD1 and int(obs.depth) == 1 and bool(obs.action_mask[c.WRITE])

    output = tmp_path / "bandit.md"
    digit_bandit.main(["--smoke", "--seeds", "1", "--updates", "2", "--log-every", "1",
                       "--batch", "8", "--output", str(output)])
    report = output.read_text()
    assert "| cells; regulariser | seed 0: accuracy / min p |" in report
    assert "| one-hot + thermometer; entropy 0.01, uniform KL 0.03 |" in report
    assert "digit_bandit.py --smoke" in report
