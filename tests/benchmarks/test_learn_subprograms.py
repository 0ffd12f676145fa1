"""benchmarks/learn_subprograms.py: the table of where the env steps went."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import learn_subprograms


def test_step_share_lines__pools_the_calls_between_evaluations() -> None:
    curve = [
        {"train_s": 10, "ended_steps": 100.0, "truncated_steps": 50.0,
         "program_steps": {"ADD": 80.0, "ADD1": 20.0}},
        {"train_s": 20, "ended_steps": 300.0, "truncated_steps": 50.0,
         "program_steps": {"ADD": 120.0, "ADD1": 180.0}, "eval_success": [0.0]},
        # The last call is reported though no evaluation followed it.
        {"train_s": 25, "ended_steps": 10.0, "truncated_steps": 10.0,
         "program_steps": {"CARRY": 10.0}},
    ]
    lines = learn_subprograms.step_share_lines(curve)
    assert lines[3] == ("| train s | ADD episodes | ADD1 episodes | CARRY episodes | "
                        "truncated episodes |")
    # 200 / 400 steps in ADD's episodes, 200 / 400 in ADD1's, 100 / 400 cut by the limit.
    assert lines[5] == "| 10-20 | 50% | 50% | 0% | 25% |"
    assert lines[6] == "| 25-25 | 0% | 0% | 100% | 100% |"
    assert len(lines) == 7


def test_step_share_lines__absent_without_step_counts() -> None:
    assert learn_subprograms.step_share_lines([{"train_s": 1, "eval_success": [1.0]}]) == []
    assert learn_subprograms.step_share_lines([]) == []
