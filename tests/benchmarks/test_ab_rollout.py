"""benchmarks/ab_rollout.py: the exported revision is renamed whole, and a tiny A/B run works."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ab_rollout


def test_export_renames_every_reference(tmp_path: Path) -> None:
    package = ab_rollout.export_package("HEAD", tmp_path, name="npigym_copy")
    sources = {p: p.read_text() for p in package.rglob("*.py")}
    assert package / "__init__.py" in sources
    assert package / "envs" / "addition" / "task.py" in sources
    for path, text in sources.items():
        assert not re.search(r"\bnpigym\b", text), path
    registration = sources[package / "registration.py"]
    assert "npigym_copy" in registration


def test_unknown_revision_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot export npigym at revision 'no-such-rev'"):
        ab_rollout.export_package("no-such-rev", tmp_path)
    with pytest.raises(SystemExit, match="no-such-rev"):
        ab_rollout.main(["--base", "no-such-rev"])


def test_tiny_run_times_both_versions(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    output = tmp_path / "ab.md"
    times = ab_rollout.main(["--base", "HEAD", "--batch-size", "2", "--steps", "2",
                             "--rounds", "2", "--output", str(output)])

    assert set(times) == {"base", "new"}
    for t in times.values():
        assert len(t["wall"]) == len(t["cpu"]) == 2
        assert all(x > 0 for x in t["wall"])
    report = output.read_text()
    assert report.strip() in capsys.readouterr().out
    assert "| base |" in report and "| new |" in report
    assert re.search(r"Paired wall-time ratio .*median \*\*\d+\.\d{3}\*\*", report)
    assert re.search(r"Over the [0-2] fast rounds", report)


def test_paired_ratios_pair_rounds() -> None:
    assert ab_rollout.paired_ratios([2.0, 3.0, 1.0], [1.0, 3.0, 2.0]) == [0.5, 1.0, 2.0]


def test_fast_rounds_keep_the_rounds_where_both_calls_ran_near_their_best() -> None:
    new = [1.0, 1.1, 2.0, 1.05]
    base = [2.0, 3.0, 2.1, 2.2]
    # Round 1: base slow; round 2: new slow; rounds 0 and 3 are within 1.15x of both bests.
    assert ab_rollout.fast_rounds(new, base) == [0, 3]
    assert ab_rollout.fast_rounds(new, base, slack=2.0) == [0, 1, 2, 3]
