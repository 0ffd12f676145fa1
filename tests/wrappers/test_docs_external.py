"""docs/external.md shows every interface (tests/test_docs.py runs its python blocks)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "external.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def blocks():
    text = DOC.read_text()
    return [(f"docs/external.md:{text[:m.start()].count(chr(10)) + 1}", m.group(1))
            for m in FENCE.finditer(text)]


def test_the_page_has_a_snippet_per_interface():
    code = "\n".join(block for _, block in blocks())
    for needle in ("gymnasium.make(", "gymnasium.make_vec(", "MaskablePPO", "check_env",
                   "JumanjiToGymWrapper", "DmEnvWrapper", "GymnaxEnv"):
        assert needle in code, needle
