"""Why flat Addition does not learn from reward at our budgets: what a random policy reaches.

An actor-critic starts close to the uniformly random valid policy and learns from the rewards
that policy's episodes happen to collect. This script plays that policy
(``npigym.agents.random``) on 5-digit Addition:

- **flat** (``modes="flat"``, the dense progress reward): ADD calls primitives only; a column
  is a WRITE of the right digit (rewarded, ``1 / digits``) then four pointer moves (not
  rewarded; eight calls with a carry), and ADD's RETURN ends the episode. The table gives the
  share of episodes that get at least k columns right.
- **hierarchical**, each program as its own task (``SubprogramStartWrapper`` with that program
  alone; its postcondition decides success): the share of episodes the random policy
  finishes right, which is what a program's first updates learn from in the
  ``addition-hierarchical`` preset, without and with its reverse curriculum (the expert
  makes the program's first 1-4 decisions in half the episodes).

Usage::

    .venv/bin/python benchmarks/random_policy_addition.py
    .venv/bin/python benchmarks/random_policy_addition.py --episodes 2000   # quick
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import jax
import jax.numpy as jnp
import numpy as np

import npigym
from npigym.agents.curriculum import SubprogramStartWrapper
from npigym.agents.random import program_action_from_word
from npigym.envs.machine.generator import hash_stream, seed_word

RESULTS = Path(__file__).resolve().parent / "results"


def play(env: Any, base: Any, episodes: int, max_steps: int, seed: int = 0) -> Dict[str, Any]:
    """Play ``episodes`` episodes of ``env`` (one each, vmapped) with the uniformly random
    valid policy of ``base`` (the unwrapped env) until they end or ``max_steps`` pass.
    Returns per-episode numpy arrays: ``ret``, ``length``, ``success``, ``ended``."""
    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)

    @jax.jit
    def run(keys):
        state, ts = jax.vmap(env.reset)(keys)
        word = seed_word(jax.random.PRNGKey(seed + 1))

        def body(carry, i):
            state, ts, done, ret, length, success = carry
            words = hash_stream(word, i * episodes + jnp.arange(episodes))
            action = jax.vmap(lambda w, o: program_action_from_word(base, w, o))(
                words, ts.observation)
            state2, ts2 = jax.vmap(env.step)(state, action)
            live = ~done
            ret = ret + jnp.where(live, ts2.reward, 0.0)
            length = length + live.astype(jnp.int32)
            success = jnp.where(live & ts2.last(), ts2.extras["success"], success)

            def keep(new, old):  # finished episodes stay as they ended
                return jax.tree.map(lambda x, y: jnp.where(
                    live.reshape((-1,) + (1,) * (x.ndim - 1)), x, y), new, old)

            return (keep(state2, state), keep(ts2, ts), done | ts2.last(), ret, length,
                    success), None

        zeros = jnp.zeros(episodes)
        carry = (state, ts, jnp.zeros(episodes, bool), zeros,
                 jnp.zeros(episodes, jnp.int32), jnp.zeros(episodes, bool))
        (_, _, done, ret, length, success), _ = jax.lax.scan(body, carry,
                                                             jnp.arange(max_steps))
        return ret, length, success, done

    ret, length, success, done = (np.asarray(x) for x in jax.device_get(run(keys)))
    return {"ret": ret, "length": length, "success": success, "ended": done}


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=200_000)
    p.add_argument("--digits", type=int, default=5)
    p.add_argument("--output", default=str(RESULTS / "random_policy_addition.md"))
    args = p.parse_args(argv)
    start = time.perf_counter()
    n, digits = args.episodes, args.digits
    limit = 2 * (14 * (digits + 1) + 1)  # the env's default step limit at this size

    flat = npigym.make("Addition-v0", modes="flat", min_digits=digits, max_digits=digits,
                       reward="dense")
    out = play(flat, flat, n, limit + 1)
    columns = np.rint(out["ret"] * digits).astype(int)
    lines = [f"# Addition: what the uniformly random valid policy reaches ({digits} digits)",
             "", f"{n:,} episodes per row, each played to its end (step limit {limit}).", "",
             "## Flat: ADD calls primitives only (dense progress reward)", "",
             f"Mean episode length {out['length'].mean():.1f} steps (median "
             f"{np.median(out['length']):.0f}); episodes ended by ADD's RETURN: "
             f"{np.mean(out['ended'] & (out['length'] < limit)):.1%}.", "",
             "| columns right, at least | share of episodes | episodes |", "|---|---|---|"]
    for k in range(1, digits + 1):
        hits = int(np.sum(columns >= k))
        lines.append(f"| {k} | {hits / n:.2e} | {hits:,} |")

    lines += ["", "## Hierarchical: each program as its own task (its postcondition)", "",
              "Without and with the preset's reverse curriculum (`curriculum_max_forced=4`: in "
              "half the episodes the expert makes the program's first 1-4 decisions).", "",
              "| program | share finished right | mean length | with the reverse curriculum: "
              "share finished right | mean length |", "|---|---|---|---|---|"]
    base = npigym.make("Addition-v0", min_digits=1, max_digits=digits, reward="dense")
    for name in ("LSHIFT", "CARRY", "ADD1", "ADD"):
        row = f"| {name} |"
        for forced in (0, 4):
            env = SubprogramStartWrapper(base, {name: 1}, max_forced=forced)
            out = play(env, base, n, limit + 1)
            row += f" {out['success'].mean():.2e} | {out['length'].mean():.1f} |"
        lines.append(row)
        print(row, flush=True)

    load = os.getloadavg()
    lines += ["", "## Machine", "",
              f"- {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load "
              f"average at the end {load[0]:.1f}; {time.perf_counter() - start:.0f} s in all",
              f"- JAX {jax.__version__}; Python {platform.python_version()}",
              f"- date {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC", "", "## Command", "",
              "```", ".venv/bin/python benchmarks/random_policy_addition.py "
              + " ".join(shlex.quote(a) for a in argv), "```", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.output).write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
