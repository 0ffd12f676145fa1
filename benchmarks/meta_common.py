"""Shared helpers of the meta-gradient benchmarks: machine description, tables, result files."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any, Dict, List, Sequence

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine() -> str:
    import jax

    cores = os.cpu_count()
    return (f"{platform.processor() or platform.machine()}, {cores} cores visible, "
            f"jax {jax.__version__} on {jax.default_backend()} (shared with other jobs: "
            "timings are noisy; compare within one run)")


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], os.getcwd()), *sys.argv[1:]])


def table(rows: List[Dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|")  # a bare pipe would split the cell

    lines = ["| " + " | ".join(fmt(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write(name: str, markdown: str, data: Dict[str, Any]) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    md = os.path.join(RESULTS, f"{name}.md")
    with open(md, "w") as f:
        f.write(markdown)
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump(data, f, indent=1, default=float)
    return md
