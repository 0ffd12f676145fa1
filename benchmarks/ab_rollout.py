"""Paired A/B timing of a batched rollout: the working tree's ``npigym`` against a git revision's.

Why this exists: on the shared 2-core machine absolute timings move by ±30 % between runs, and
slow windows of 0.5-2 s stretch single calls by 1.5x, so a few-percent change to the env cannot
be judged from two separate runs of ``env_throughput.py``. Here both versions live in one
process: the revision's package is exported with ``git archive`` and imported under another
name (``npigym_base``); both rollouts are compiled, then timed in interleaved rounds (each call
right after an untimed call of the same function, the order alternating each round), and the
figure that counts is the *paired* ratio of the two calls of each round, which a slow window
hits alike. The rollout is ``env_throughput.py``'s: ``jit`` of ``B`` environments with the
batched auto-reset, ``lax.scan`` of ``T`` steps of ``vmap(policy)`` and ``vmap(step)``, the same
checksum of every observation.

What it taught the team (issue 2's notes): on XLA:CPU the wall time of an Addition step is set by
how XLA fuses and schedules the step over the two cores, not by the number of operations; taking
work *out* of the step made it slower more than once. Measure every change this way.

Two host modes: for a few seconds at a time the host runs this process's two threads at full
speed, then for a while slower (an Addition call of 4,096 envs took 24-28 ms in the fast mode
and 40-49 ms in the slow one, with about 1.4x the CPU time per call: both threads run, but
slower). A change's ratio can differ between the modes: making a per-env flag
``computed_once`` measured 0.90-0.91 in the fast mode and 0.98-1.00 in the slow one. So the
report also gives the paired ratio over the *fast rounds* only (both calls within 1.15x of
their variant's fastest), and the base's median call says which mode a run was in. Under
``taskset -c 0`` (one core, no concurrency) the ratio measures the work a change removes
(A/A: 1.004, quartiles 1.001-1.030).

Usage (from the repository root)::

    .venv/bin/python benchmarks/ab_rollout.py --base HEAD
    .venv/bin/python benchmarks/ab_rollout.py --base HEAD~3 --env Sorting-v0 --rounds 15
    taskset -c 0 .venv/bin/python benchmarks/ab_rollout.py --base HEAD --rounds 7
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import jax

import npigym

sys.path.insert(0, str(Path(__file__).resolve().parent))
from env_throughput import (  # the same rollout, checksum and fast-mode cut
    FAST_SLACK,
    expert_policy,
    make_rollout,
)

BASE_NAME = "npigym_base"
REPO = Path(__file__).resolve().parent.parent
POLICIES = ("random", "expert")


def export_package(revision: str, dest: Path, name: str = BASE_NAME) -> Path:
    """Write ``revision``'s ``npigym`` package to ``dest/name``, renamed so it imports beside
    the working tree's.

    Every ``npigym`` word in its sources becomes ``name``: imports, registry entry points and
    the gymnasium ids (``npigym/Addition-v0`` becomes ``name/Addition-v0``, so importing it
    overrides none of the working tree's registrations).

    Raises:
        ValueError: ``revision`` is not a commit of this repository, or has no ``npigym``.
    """
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", revision, "npigym"],
                                 cwd=REPO, capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as error:
        raise ValueError(f"cannot export npigym at revision {revision!r}: "
                         f"{error.stderr.decode().strip()}") from None
    target = dest / name
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            path = target / Path(member.name).relative_to("npigym")
            path.parent.mkdir(parents=True, exist_ok=True)
            data = tar.extractfile(member).read()
            if path.suffix == ".py":
                data = re.sub(r"\bnpigym\b", name, data.decode()).encode()
            path.write_bytes(data)
    return target


def import_revision(revision: str, workdir: Path) -> ModuleType:
    """Import ``revision``'s ``npigym`` as :data:`BASE_NAME` (exported into ``workdir``).

    A package of that name imported earlier (another revision) is dropped first.
    """
    export_package(revision, workdir)
    for module in [m for m in sys.modules if m == BASE_NAME or m.startswith(BASE_NAME + ".")]:
        del sys.modules[module]
    sys.path.insert(0, str(workdir))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. gymnasium re-registering wrappers' ids
            return importlib.import_module(BASE_NAME)
    finally:
        sys.path.remove(str(workdir))


def build_rollout(package: ModuleType, env_id: str, batch_size: int, steps: int,
                  policy: str = "random"
                  ) -> Callable[[jax.Array], Tuple[jax.Array, jax.Array]]:
    """``env_throughput.py``'s rollout of ``package``'s env: ``key -> (checksum, episodes)``.

    Everything the rollout runs (env, batched auto-reset, random policy, hash) comes from
    ``package``, so two packages are compared whole.
    """
    sub = {m: importlib.import_module(f"{package.__name__}.{m}")
           for m in ("wrappers.auto_reset", "agents.random", "envs.machine.generator")}
    unwrapped = package.make(env_id)
    env = sub["wrappers.auto_reset"].VmapAutoResetWrapper(unwrapped)
    if policy == "random":  # the package's own sampler, not the working tree's
        choose = sub["agents.random"].program_action_from_word

        def act(word, state, observation):
            return choose(unwrapped, word, observation)
    else:
        act = expert_policy(unwrapped)
    return make_rollout(env, act, batch_size, steps,
                        word_stream=sub["envs.machine.generator"].hash_stream)


def time_paired(fns: Dict[str, Callable], rounds: int) -> Dict[str, Dict[str, List[float]]]:
    """Wall and CPU seconds of each function's timed call, ``rounds`` interleaved rounds.

    Each round calls every function once untimed, then once timed; the order alternates.
    """
    names = list(fns)
    for f in fns.values():
        jax.block_until_ready(f(jax.random.PRNGKey(0)))
    out = {k: {"wall": [], "cpu": []} for k in names}
    for r in range(rounds):
        for k in names[r % 2:] + names[:r % 2]:
            jax.block_until_ready(fns[k](jax.random.PRNGKey(r)))
            cpu, wall = time.process_time(), time.perf_counter()
            jax.block_until_ready(fns[k](jax.random.PRNGKey(r + 1)))
            out[k]["wall"].append(time.perf_counter() - wall)
            out[k]["cpu"].append(time.process_time() - cpu)
    return out


def paired_ratios(new: Sequence[float], base: Sequence[float]) -> List[float]:
    """``new / base`` round by round, sorted."""
    return sorted(a / b for a, b in zip(new, base))


def fast_rounds(new: Sequence[float], base: Sequence[float], slack: float = FAST_SLACK
                ) -> List[int]:
    """The rounds whose two calls both took at most ``slack`` times their variant's fastest
    call: the rounds run while the host gave the process both cores (see the module doc)."""
    new_best, base_best = min(new), min(base)
    return [i for i, (a, b) in enumerate(zip(new, base))
            if a <= slack * new_best and b <= slack * base_best]


def report(times: Dict[str, Dict[str, List[float]]], title: str, command: str) -> str:
    """A markdown table: per variant the median, fastest and CPU time, and the paired ratio,
    over all rounds and over the fast rounds."""
    base, new = times["base"], times["new"]
    ratios = paired_ratios(new["wall"], base["wall"])
    fast = fast_rounds(new["wall"], base["wall"])
    fast_ratios = paired_ratios([new["wall"][i] for i in fast], [base["wall"][i] for i in fast])
    q = len(ratios) // 4
    lines = [f"# {title}", "",
             "| variant | median call (ms) | fastest (ms) | CPU per call (ms) |",
             "|---|---|---|---|"]
    for k, t in times.items():
        lines.append(f"| {k} | {1e3 * statistics.median(t['wall']):.2f} | "
                     f"{1e3 * min(t['wall']):.2f} | {1e3 * statistics.median(t['cpu']):.2f} |")
    lines += ["",
              f"Paired wall-time ratio new / base (below 1: the working tree is faster): "
              f"median **{statistics.median(ratios):.3f}**, quartiles "
              f"{ratios[q]:.3f}-{ratios[len(ratios) - 1 - q]:.3f}, {len(ratios)} rounds.",
              f"Over the {len(fast)} fast rounds (both calls within {FAST_SLACK:g}x of their "
              f"variant's fastest): "
              + (f"median **{statistics.median(fast_ratios):.3f}**, range "
                 f"{fast_ratios[0]:.3f}-{fast_ratios[-1]:.3f}." if fast_ratios else "none."),
              f"CPU-time ratio (medians): "
              f"{statistics.median(new['cpu']) / statistics.median(base['cpu']):.3f}.",
              "", "```", command, "```", ""]
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    def positive(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
        return value

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="HEAD", help="git revision to compare against (HEAD)")
    p.add_argument("--env", default="Addition-v0", help="registered env id (Addition-v0)")
    p.add_argument("--policy", choices=POLICIES, default="random")
    p.add_argument("--batch-size", type=positive, default=4096)
    p.add_argument("--steps", type=positive, default=100, help="steps per jitted call")
    p.add_argument("--rounds", type=positive, default=9, help="timed rounds")
    p.add_argument("--output", help="also write the report to this markdown file")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, List[float]]]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            base = import_revision(args.base, Path(workdir))
        except ValueError as error:
            raise SystemExit(str(error)) from None
        fns = {name: build_rollout(package, args.env, args.batch_size, args.steps, args.policy)
               for name, package in (("base", base), ("new", npigym))}
        times = time_paired(fns, args.rounds)
    title = (f"{args.env}, {args.policy} policy, B={args.batch_size:,}, T={args.steps}: "
             f"working tree vs {args.base}")
    command = shlex.join([".venv/bin/python", "benchmarks/ab_rollout.py",
                          *(sys.argv[1:] if argv is None else argv)])
    text = report(times, title, command)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return times


if __name__ == "__main__":
    main()
