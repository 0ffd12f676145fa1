"""benchmarks/env_throughput.py runs end to end on tiny sizes, so it cannot rot unnoticed."""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import env_throughput


def test_quick_run_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    output = tmp_path / "results" / "throughput.md"
    # One small batch size: every case compiles once (the suite's time budget is tight).
    rows = env_throughput.main(["--quick", "--batch-sizes", "2", "--output", str(output)])

    cases = env_throughput.default_cases()
    assert [f"{r.env} | {r.policy} | {r.reset}" for r in rows] == [c.label for c in cases]
    for row, case in zip(rows, cases):
        sizes = {1} if isinstance(case, env_throughput.PythonCase) else {2}
        assert set(row.steps_per_s) == sizes, case.label
        assert all(v > 0 for v in row.steps_per_s.values()), case.label
        assert all(n >= 0 for n in row.episodes.values()), case.label

    report = output.read_text()
    assert "| env | policy | reset | B=2 | compile + first call, s |" in report
    for case in cases:
        assert f"| {case.env} | {case.policy} | {case.reset} |" in report
    # Every ratio is computable from a full run of the default cases.
    for ratio in env_throughput.RATIOS:
        assert f"| {ratio.name} |" in report
    assert "## Machine" in report and "- CPU: " in report
    assert "env_throughput.py --quick --batch-sizes 2 --output" in report
    assert "| env | policy | reset |" in capsys.readouterr().out


def test_envs_filter_and_list(capsys: pytest.CaptureFixture) -> None:
    assert env_throughput.main(["--list", "--envs", "snake"]) == []
    listed = capsys.readouterr().out.strip().splitlines()
    assert listed and all(line.startswith("Snake-v1 |") for line in listed)
    with pytest.raises(SystemExit):
        env_throughput.main(["--list", "--envs", "NoSuchEnv-v0"])


def test_observation_checksum__reads_every_leaf_in_its_own_dtype() -> None:
    observation = {"grid": jnp.full((2, 3), 0.5, jnp.float32), "mask": jnp.ones((2, 4), bool),
                   "cells": jnp.full((2, 2), 7, jnp.int8), "program": jnp.arange(2)}
    total = env_throughput.observation_checksum(observation)
    assert total.dtype == jnp.float32 and float(total) == 3.0 + 8 + 28 + 1
    for name, leaf in observation.items():  # a change in any leaf changes the sum
        changed = {**observation, name: jnp.zeros_like(leaf)}
        assert float(env_throughput.observation_checksum(changed)) != float(total), name


def test_ratio_row__a_value_just_below_its_target_does_not_print_as_the_target() -> None:
    target = env_throughput.Ratio("A vs B", "a", "b", target=10.0)
    row = env_throughput.ratio_row(target, 4096, 4096, 9.966, 10.0, 10.02)
    assert "| 9.97x | 10.00x | 10.02x | ≥ 10x (NOT met / met / met) |" in row
    plain = env_throughput.ratio_row(env_throughput.Ratio("C vs D", "c", "d"), 4096, 1, 85.72,
                                     90.0, 0.5)
    assert plain.endswith("| 85.7x | 90.0x | 0.500x | — |")


def test_fast_calls_keep_the_calls_near_the_fastest() -> None:
    assert env_throughput.fast_calls([0.041, 0.025, 0.024, 0.027, 0.049]) == [0.025, 0.024, 0.027]
    assert env_throughput.fast_calls([1.0]) == [1.0]
