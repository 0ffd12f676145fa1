"""Runs the sorting expert to the end of many episodes quickly, in or out of process.

Length 1,000 takes about 12 million expert calls. ``env.step`` in a ``while_loop`` pays for the
observation, rewards and every postcondition at each call; this loop does only what the
machine's hierarchical posing does to the task and the stack (the expert's call, the primitive,
a push or a pop), so it counts exactly the agent steps of that posing. Even so, XLA:CPU runs a
``while_loop`` whose state exceeds 1 kB as one dispatch per op per iteration (~4 us here);
raising ``xla_cpu_small_while_loop_byte_threshold`` compiles the loop into one kernel (~0.1 us),
but XLA reads that flag once per process, hence the subprocess for the long arrays
(:func:`run_in_subprocess`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from npigym.envs.machine import stack as call_stack
from npigym.envs.machine.library import PRIMITIVE, RETURN_ID
from npigym.envs.sorting import Max, Sorting, SortingGenerator
from npigym.envs.sorting.types import SortPad

REPO_ROOT = Path(__file__).resolve().parents[3]
FAST_LOOP_FLAGS = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000"


def expert_episode(env: Sorting):
    """``run(pad) -> (final pad, steps, invalid primitives, step_limit)`` (pure), from the
    instance ``pad``."""
    is_primitive = jnp.asarray([p.mode == PRIMITIVE and i != RETURN_ID
                                for i, p in enumerate(env.library.programs)])

    def run(first):
        stack = call_stack.new_stack(env.max_depth, env.library.root, env.snapshot(first))

        def body(carry):
            task, stack, _, steps, invalid = carry
            call = env.expert_call(task, call_stack.top(stack))
            program, args = call[0], call[1:]
            primitive, returning = is_primitive[program], program == RETURN_ID
            applied, ok = env.apply_primitive(task, program, args)
            done = returning & (stack.depth == 0)
            stack = call_stack.update(stack, count=~returning, push=~primitive & ~returning,
                                      pop=returning, program=program, args=args,
                                      snapshot=env.snapshot(task))
            # The task's apply_primitive leaves the pad alone for program ids that are not
            # primitives (test_task checks it), so no row-wide select is needed here; an
            # invalid primitive would be counted and fail the test.
            task = applied
            return task, stack, done, steps + 1, invalid + (primitive & ~ok)

        zero = jnp.zeros((), jnp.int32)
        task, _, _, steps, invalid = jax.lax.while_loop(
            lambda carry: ~carry[2], body, (first, stack, jnp.array(False), zero, zero))
        return task, steps, invalid, env.default_step_limit(first)

    return run


def run_pads(env: Sorting, pads: SortPad) -> List[Dict[str, object]]:
    """The expert's episodes from a batch of instances, as plain Python data.

    ``lax.map`` rather than ``vmap``: batched, the single-cell writes become scatters, which
    XLA:CPU cannot fold into the one-kernel loop.
    """
    last, steps, invalid, limit = jax.jit(lambda p: jax.lax.map(expert_episode(env), p))(pads)
    first, last, steps, invalid, limit = jax.tree.map(
        np.asarray, (pads, last, steps, invalid, limit))
    out = []
    for b in range(len(steps)):
        n = int(first.length[b])
        out.append({
            "initial": (first.cells[b, :n].astype(int) - 1).tolist(),
            "final": (last.cells[b, :n].astype(int) - 1).tolist(),
            "pointers": last.pointers[b].tolist(),
            "steps": int(steps[b]),
            "invalid": int(invalid[b]),
            "limit": int(limit[b]),
        })
    return out


def draw(generator: SortingGenerator, seed: int, count: int, width: int = 0) -> SortPad:
    """``count`` instances from ``generator``, their rows padded with blanks to ``width``."""
    keys = jax.random.split(jax.random.PRNGKey(seed), count)
    pads = jax.jit(jax.vmap(generator))(keys)
    extra = max(width - pads.cells.shape[1], 0)
    return pads.replace(cells=jnp.pad(pads.cells, ((0, 0), (0, extra))))


def run_batch(env: Sorting, seed: int, count: int) -> List[Dict[str, object]]:
    """``count`` expert episodes on instances of ``env``'s generator."""
    return run_pads(env, draw(env.generator, seed, count))


def run_in_subprocess(task: str, length: int, count: int, seed: int,
                      timeout: float = 240.0) -> List[Dict[str, object]]:
    """:func:`run_batch` on ``Sorting`` or ``Max`` (hierarchical) at one length, in a fresh
    process whose XLA compiles the expert's loop into one kernel."""
    env_vars = dict(os.environ)
    env_vars["XLA_FLAGS"] = (env_vars.get("XLA_FLAGS", "") + " " + FAST_LOOP_FLAGS).strip()
    env_vars["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "tests.envs.sorting.expert_runner", task, str(length),
           str(count), str(seed)]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env_vars, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def key_for(env: Sorting, array: Sequence[int], tries: int = 500) -> jax.Array:
    """A key for which ``env``'s generator (an ``ArrayGenerator``) draws ``array``: tests share
    one env, hence one compile, across fixed arrays."""
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(tries))
    pads = jax.tree.map(np.asarray, jax.jit(jax.vmap(env.generator))(keys))
    for k in range(tries):
        n = int(pads.length[k])
        if (pads.cells[k, :n].astype(int) - 1).tolist() == list(array):
            return keys[k]
    raise AssertionError(f"no key among {tries} draws {list(array)}")


def make_env(task: str, length: int) -> Sorting:
    if task == "sorting":
        return Sorting(min_length=length, max_length=length)
    return Max(min_length=length, max_length=length, modes="hierarchical")


def main(argv: Sequence[str]) -> None:
    task, length, count, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    print(json.dumps(run_batch(make_env(task, length), seed, count)))


if __name__ == "__main__":
    main(sys.argv[1:])
