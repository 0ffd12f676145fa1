"""Environment throughput: env steps per second of npigym's envs, Jumanji's Snake-v1 and the
plain-Python reference, measured in one process and one run so their ratios can be compared.

Method (as in the research notes' ``bench_jumanji.py``): one ``jax.jit`` call resets ``B``
environments with ``vmap(reset)`` and runs a ``lax.scan`` of ``T`` steps of
``vmap(policy)`` then ``vmap(step)``. The first call (compile plus one run) is timed on its own;
then every (case, B) is timed once per round, in ``--repeats`` interleaved rounds that each
start one case later (so a busy neighbour's bursts hit all cases alike), each JAX call right
after an untimed call of the same function (the first call after another row's run, above all
a Python one, was up to 2.4x slower), and the median call gives ``env-steps/s = B * T / t``
(the one initial reset per call is included). Random policies get one uint32 per env per step,
hashed from the step index and a per-env seed that ``jax.random.bits`` draws once per call, and
expand it with an integer hash (``npigym.agents.random``): the same cheap sampler for every env,
so that sampling does not dominate. (Drawing the words with ``jax.random.bits`` at every step
ran threefry as a rolled loop on XLA:CPU and cost 5-7 % of an Addition rollout, 1 % of
Snake's.) The Python reference steps one env at a time in a Python loop and resets it when an
episode ends.

Adding an environment is one entry in :func:`default_cases` (and, optionally, a ratio in
:data:`RATIOS`).

Usage (from the repository root)::

    .venv/bin/python benchmarks/env_throughput.py
    .venv/bin/python benchmarks/env_throughput.py --envs Addition --batch-sizes 1024 --repeats 5
    .venv/bin/python benchmarks/env_throughput.py --quick --output /tmp/throughput.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import os
import platform
import random
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import jumanji
import numpy as np
from jumanji.env import Environment
from jumanji.wrappers import AutoResetWrapper as JumanjiAutoResetWrapper
from jumanji.wrappers import VmapWrapper

import npigym
from npigym.agents.random import masked_choice, program_action_from_word
from npigym.envs.machine.generator import hash_stream
from npigym.wrappers.auto_reset import (
    AutoResetWrapper,
    VmapAutoResetWrapper,
    default_resets_per_pass,
)

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # run as a script it is there already; imported, it may not be
    sys.path.insert(0, str(_HERE))
import python_reference  # noqa: E402

DEFAULT_OUTPUT = _HERE / "results" / "env_throughput.md"
# --quick is a smoke run whose timings mean nothing; these options halve XLA:CPU's compile time.
QUICK_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0,
                          "xla_llvm_disable_expensive_passes": True}

# How episodes restart; the table's "reset" column. npigym's auto-reset is the batched
# VmapAutoResetWrapper (resets only the envs that ended); "per env" is vmap(AutoResetWrapper),
# which under vmap computes a reset for every env at every step, as Jumanji's does.
NPIGYM_AUTO_RESET = "auto-reset (npigym)"
NPIGYM_PER_ENV_AUTO_RESET = "auto-reset (npigym, per env)"
JUMANJI_AUTO_RESET = "auto-reset (jumanji)"
NO_RESET = "none"
PYTHON_RESET = "reset on LAST"

# policy(word, state, observation) -> action, for one (unbatched) env; ``word`` is a uint32.
Policy = Callable[[jax.Array, Any, Any], jax.Array]


# ----------------------------------------------------------------------------------------------
# Policies and reset modes.
# ----------------------------------------------------------------------------------------------
def random_program_policy(env: Environment) -> Policy:
    """Uniform over valid calls of a program-machine env (one word per step)."""
    return lambda word, state, observation: program_action_from_word(env, word, observation)


def expert_policy(env: Environment) -> Policy:
    """The task's expert (NPI's execution trace); the random word is unused."""
    return lambda word, state, observation: env.expert_action(state)


def random_masked_policy(env: Environment) -> Policy:
    """Uniform over the True entries of a discrete-action env's ``action_mask``."""
    return lambda word, state, observation: masked_choice(word, observation.action_mask.reshape(-1))


def observation_checksum(observation: Any) -> jax.Array:
    """A float32 sum over every leaf of a batch of observations (keeps all of it computed).

    Each leaf is summed in its own kind, integers and booleans in int32 (wrapping is fine for
    a checksum) and floats in float32, and the two totals are added once. Casting every
    integer leaf to float32 before its sum cost 7 % of an Addition rollout at 4,096 envs
    (five casts and five float reductions a step, all observation leaves being integers) and
    nothing measurable of Snake's (a float grid): that was the harness, not the env.
    """
    leaves = jax.tree.leaves(observation)
    floats = [jnp.sum(x, dtype=jnp.float32) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    ints = [jnp.sum(x, dtype=jnp.int32) for x in leaves if not jnp.issubdtype(x.dtype, jnp.inexact)]
    return (sum(floats, jnp.zeros((), jnp.float32))
            + sum(ints, jnp.zeros((), jnp.int32)).astype(jnp.float32))


def wrap(env: Environment, reset: str) -> Environment:
    """A batched ``env`` (``reset(keys)``, ``step(states, actions)``) with the reset mode
    ``reset`` (the policy still sees the unwrapped env's state)."""
    if reset == NPIGYM_AUTO_RESET:
        return VmapAutoResetWrapper(env)
    if reset == NPIGYM_PER_ENV_AUTO_RESET:
        return VmapWrapper(AutoResetWrapper(env))
    if reset == JUMANJI_AUTO_RESET:  # = jumanji.wrappers.VmapAutoResetWrapper
        return VmapWrapper(JumanjiAutoResetWrapper(env, next_obs_in_extras=True))
    if reset == NO_RESET:
        return VmapWrapper(env)
    raise ValueError(f"unknown reset mode {reset!r}")


def make_rollout(env: Environment, policy: Policy, batch_size: int, steps: int,
                 word_stream: Callable[[jax.Array, jax.Array], jax.Array] = hash_stream,
                 ) -> Callable[[jax.Array], Tuple[jax.Array, jax.Array]]:
    """The jitted rollout ``key -> (total reward, episodes ended)`` of a batched ``env``.

    ``env`` is batched (``reset(keys)``, ``step(states, actions)``, see :func:`wrap`);
    ``policy`` acts for one env and is vmapped; ``word_stream(seeds, t)`` gives its random
    words (``benchmarks/ab_rollout.py`` passes another package version's).
    """
    policy = jax.vmap(policy)

    def rollout(key: jax.Array) -> Tuple[jax.Array, jax.Array]:
        reset_key, run_key = jax.random.split(key)
        state, timestep = env.reset(jax.random.split(reset_key, batch_size))
        seeds = jax.random.bits(run_key, (batch_size,), jnp.uint32)

        def body(carry, t):
            state, timestep, reward, ended = carry
            words = word_stream(seeds, t)  # the policies' one random word per env and step
            action = policy(words, state, timestep.observation)
            state, timestep = env.step(state, action)
            # Reduced outputs keep XLA from pruning the rollout without copying states out.
            # The observation is folded in too, as an agent would read all of it: XLA drops
            # loop-carried values nobody reads, so without this an image observation
            # (Canonicalize) would never be rendered and its cost would go unmeasured.
            reward = reward + timestep.reward.sum() + observation_checksum(timestep.observation)
            ended = ended + timestep.last().sum(dtype=jnp.int32)
            return (state, timestep, reward, ended), None

        init = (state, timestep, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        (_, _, reward, ended), _ = jax.lax.scan(body, init, jnp.arange(steps, dtype=jnp.uint32))
        return reward, ended

    return jax.jit(rollout)


# The host has two modes (see the report's "Noise" section): a call counts as run in the fast one
# when it took at most this times the fastest call of its row.
FAST_SLACK = 1.15


def fast_calls(times: Sequence[float], slack: float = FAST_SLACK) -> List[float]:
    """The calls that took at most ``slack`` times the fastest one (never empty)."""
    best = min(times)
    return [t for t in times if t <= slack * best]


# ----------------------------------------------------------------------------------------------
# Benchmark cases.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One line of the table: steps/s and compile seconds per batch size."""

    env: str
    policy: str
    reset: str
    steps_per_s: Dict[int, float] = dataclasses.field(default_factory=dict)
    # From the median of the fast calls (within FAST_SLACK of the fastest) and from the
    # fastest call, instead of the median of all calls (see the report's "Noise" section).
    fast_steps_per_s: Dict[int, float] = dataclasses.field(default_factory=dict)
    best_steps_per_s: Dict[int, float] = dataclasses.field(default_factory=dict)
    compile_s: Dict[int, float] = dataclasses.field(default_factory=dict)
    run_s: Dict[int, List[float]] = dataclasses.field(default_factory=dict)
    # LAST time steps seen in the last timed call (or run, for Python rows).
    episodes: Dict[int, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every case runs: batch sizes, T, timed repeats, Python steps per timed run, and XLA
    compiler options (the smoke run compiles with fewer optimisations, to stay fast)."""

    batch_sizes: Tuple[int, ...]
    steps: int
    repeats: int
    python_steps: int
    compiler_options: Optional[Dict[str, Any]] = None


@dataclasses.dataclass
class Measurement:
    """One (case, batch size), ready to time: ``run(repeat) -> (seconds, LAST steps)`` does
    ``steps`` env steps in all."""

    batch_size: int
    steps: int
    run: Callable[[int], Tuple[float, int]]
    compile_s: Optional[float] = None
    times: List[float] = dataclasses.field(default_factory=list)
    episodes: int = 0


@dataclasses.dataclass(frozen=True)
class JaxCase:
    """A Jumanji-style env, rolled out with jit(scan(vmap)) at every batch size.

    Attributes:
        env: the name shown in the table (usually the registered id).
        policy: the policy's name in the table.
        reset: one of the reset modes (``NPIGYM_AUTO_RESET``, ``NPIGYM_PER_ENV_AUTO_RESET``,
            ``JUMANJI_AUTO_RESET``, ``NO_RESET``).
        make_env: builds the (unwrapped) env.
        make_policy: builds the policy from the unwrapped env.
    """

    env: str
    policy: str
    reset: str
    make_env: Callable[[], Environment]
    make_policy: Callable[[Environment], Policy]

    @property
    def label(self) -> str:
        return f"{self.env} | {self.policy} | {self.reset}"

    def build(self, batch_size: int, steps: int) -> Callable[[jax.Array], Tuple[jax.Array, ...]]:
        """The jitted rollout ``key -> (total reward, episodes ended)``."""
        unwrapped = self.make_env()
        return make_rollout(wrap(unwrapped, self.reset), self.make_policy(unwrapped),
                            batch_size, steps)

    def prepare(self, settings: Settings) -> List[Measurement]:
        """Compile (and run once) the rollout at every batch size."""
        out = []
        for b in settings.batch_sizes:
            fn = self.build(b, settings.steps)
            start = time.perf_counter()
            if settings.compiler_options:
                fn = fn.lower(jax.random.PRNGKey(0)).compile(settings.compiler_options)
            jax.block_until_ready(fn(jax.random.PRNGKey(0)))
            compile_s = time.perf_counter() - start

            def run(repeat: int, fn=fn) -> Tuple[float, int]:
                key = jax.random.PRNGKey(repeat + 1)
                # One untimed call first: right after another row's run (above all a
                # single-threaded Python one, ~1 s) the same call took up to 2.4x longer
                # (Addition, B=4,096: 75 ms instead of 32 ms), which measures the gap, not
                # the env. A training loop calls its jitted update back to back.
                jax.block_until_ready(fn(key))
                start = time.perf_counter()
                _, ended = jax.block_until_ready(fn(key))
                return time.perf_counter() - start, int(ended)

            out.append(Measurement(b, b * settings.steps, run, compile_s))
        return out


@dataclasses.dataclass(frozen=True)
class PythonCase:
    """A plain-Python env stepped one env, one step at a time (B = 1 by nature).

    Attributes:
        env, policy: names shown in the table.
        run: ``run(steps, seed) -> (seconds, episodes ended)``, stepping ``steps`` times.
    """

    env: str
    policy: str
    run: Callable[[int, int], Tuple[float, int]]
    reset: str = PYTHON_RESET

    @property
    def label(self) -> str:
        return f"{self.env} | {self.policy} | {self.reset}"

    def prepare(self, settings: Settings) -> List[Measurement]:
        self.run(max(settings.python_steps // 100, 10), 0)  # warm caches and the allocator
        run = functools.partial(_python_run, self.run, settings.python_steps)
        return [Measurement(1, settings.python_steps, run)]


def _python_run(run: Callable[[int, int], Tuple[float, int]], steps: int, repeat: int
                ) -> Tuple[float, int]:
    return run(steps, repeat + 1)


Case = Union[JaxCase, PythonCase]


def python_addition_runner(policy: str) -> Callable[[int, int], Tuple[float, int]]:
    """Steps the Python reference of Addition-v0 (default sizes) with ``policy``."""

    def run(steps: int, seed: int) -> Tuple[float, int]:
        env = python_reference.PythonAddition(seed=seed)
        rng = random.Random(seed)
        observation = env.reset()
        episodes = 0
        start = time.perf_counter()
        for _ in range(steps):
            if policy == "expert":
                action = env.expert_action()
            else:
                action = python_reference.random_valid_action(observation, rng)
            timestep = env.step(action)
            observation = timestep.observation
            if timestep.last():
                episodes += 1
                observation = env.reset()
        return time.perf_counter() - start, episodes

    return run


def make_npigym(env_id: str, **kwargs: Any) -> Callable[[], Environment]:
    return lambda: npigym.make(env_id, **kwargs)


def make_jumanji(env_id: str, **kwargs: Any) -> Callable[[], Environment]:
    return lambda: jumanji.make(env_id, **kwargs)


def make_canonicalize_without_rendering() -> Environment:
    """Canonicalize-v0 with the renderer replaced by a constant image: the same machine, so the
    difference with the real env is the cost of rendering (the step's images and those of the
    reset pass, see :func:`_render_cost`)."""
    from npigym.envs.canonicalize import Canonicalize

    class Unrendered(Canonicalize):
        def render_image(self, scene: Any) -> jax.Array:
            return jnp.zeros(self.image_shape, jnp.float32)

    return Unrendered()


def default_cases() -> List[Case]:
    """Every benchmark case, in table order. Add an environment here."""
    addition = make_npigym("Addition-v0")
    sorting = make_npigym("Sorting-v0")
    canonicalize = make_npigym("Canonicalize-v0")
    snake = make_jumanji("Snake-v1")
    return [
        JaxCase("Addition-v0", "random", NPIGYM_AUTO_RESET, addition, random_program_policy),
        JaxCase("Addition-v0", "expert", NPIGYM_AUTO_RESET, addition, expert_policy),
        JaxCase("Addition-v0", "random", NPIGYM_PER_ENV_AUTO_RESET, addition,
                random_program_policy),
        JaxCase("Addition-v0", "random", NO_RESET, addition, random_program_policy),
        JaxCase("Sorting-v0", "random", NPIGYM_AUTO_RESET, sorting, random_program_policy),
        JaxCase("Sorting-v0", "expert", NPIGYM_AUTO_RESET, sorting, expert_policy),
        JaxCase("Canonicalize-v0", "random", NPIGYM_AUTO_RESET, canonicalize,
                random_program_policy),
        JaxCase("Canonicalize-v0", "expert", NPIGYM_AUTO_RESET, canonicalize, expert_policy),
        JaxCase("Canonicalize-v0 (rendering stubbed)", "random", NPIGYM_AUTO_RESET,
                make_canonicalize_without_rendering, random_program_policy),
        JaxCase("Snake-v1", "random", JUMANJI_AUTO_RESET, snake, random_masked_policy),
        JaxCase("Snake-v1", "random", NPIGYM_AUTO_RESET, snake, random_masked_policy),
        JaxCase("Snake-v1", "random", NO_RESET, snake, random_masked_policy),
        PythonCase("Addition-v0 (Python reference)", "random", python_addition_runner("random")),
        PythonCase("Addition-v0 (Python reference)", "expert", python_addition_runner("expert")),
    ]


@dataclasses.dataclass(frozen=True)
class Ratio:
    """``numerator / denominator`` of two rows' steps/s, each at a batch size (``None``: the
    largest in the run)."""

    name: str
    numerator: str  # a case label
    denominator: str
    target: Optional[float] = None
    numerator_b: Optional[int] = None
    denominator_b: Optional[int] = None


RATIOS = [
    Ratio("Addition (random, auto-reset) vs Snake-v1 (random, Jumanji auto-reset)",
          "Addition-v0 | random | auto-reset (npigym)",
          "Snake-v1 | random | auto-reset (jumanji)", target=10.0),
    Ratio("Addition (random, auto-reset) vs Snake-v1 (random, npigym auto-reset)",
          "Addition-v0 | random | auto-reset (npigym)",
          "Snake-v1 | random | auto-reset (npigym)"),
    Ratio("Addition (random, auto-reset) vs Python reference (random)",
          "Addition-v0 | random | auto-reset (npigym)",
          "Addition-v0 (Python reference) | random | reset on LAST", target=100.0,
          denominator_b=1),
    Ratio("Addition (expert, auto-reset) vs Python reference (expert)",
          "Addition-v0 | expert | auto-reset (npigym)",
          "Addition-v0 (Python reference) | expert | reset on LAST", denominator_b=1),
    Ratio("Addition (random): auto-reset vs no reset",
          "Addition-v0 | random | auto-reset (npigym)", "Addition-v0 | random | none"),
    Ratio("Addition (random): batched auto-reset vs per-env auto-reset under vmap",
          "Addition-v0 | random | auto-reset (npigym)",
          "Addition-v0 | random | auto-reset (npigym, per env)"),
    Ratio("Sorting (random, auto-reset) vs Addition (random, auto-reset)",
          "Sorting-v0 | random | auto-reset (npigym)",
          "Addition-v0 | random | auto-reset (npigym)"),
    Ratio("Canonicalize (random, auto-reset) vs the same with rendering stubbed",
          "Canonicalize-v0 | random | auto-reset (npigym)",
          "Canonicalize-v0 (rendering stubbed) | random | auto-reset (npigym)"),
]


# ----------------------------------------------------------------------------------------------
# Reporting.
# ----------------------------------------------------------------------------------------------
def format_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}K"
    return f"{x:.0f}"


def _format_times(times: Sequence[float]) -> str:
    return "[" + ", ".join(f"{t:.3f}" for t in times) + "] s"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> Dict[str, str]:
    return {
        "CPU": f"{cpu_model()}, {os.cpu_count()} cores visible",
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "JAX": f"{jax.__version__} ({jax.default_backend()}, {len(jax.devices())} device(s))",
        "Jumanji": jumanji.__version__,
        "npigym": npigym.__version__,
        "NumPy": np.__version__,
        "Python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def compute_ratios(rows: Dict[str, Row], batch_sizes: Sequence[int]
                   ) -> List[Tuple[Ratio, int, int, float, float, float]]:
    """Each ratio whose rows and batch sizes were measured: ``(ratio, b_num, b_den, value from
    the median calls, from the median fast calls, from the fastest calls)``."""
    out = []
    for ratio in RATIOS:
        num, den = rows.get(ratio.numerator), rows.get(ratio.denominator)
        if num is None or den is None:
            continue
        b_num = ratio.numerator_b or max(batch_sizes)
        b_den = ratio.denominator_b or max(batch_sizes)
        if b_num in num.steps_per_s and b_den in den.steps_per_s:
            out.append((ratio, b_num, b_den, num.steps_per_s[b_num] / den.steps_per_s[b_den],
                        num.fast_steps_per_s[b_num] / den.fast_steps_per_s[b_den],
                        num.best_steps_per_s[b_num] / den.best_steps_per_s[b_den]))
    return out


def ratio_row(ratio: Ratio, b_num: int, b_den: int, value: float, fast: float, best: float
              ) -> str:
    """One line of the ratios table. A ratio with a target shows two decimals, so that a value
    just below it (9.97x against 10x) does not print as the target itself beside "NOT met"."""

    def shown(x: float) -> str:
        if x < 1:
            return f"{x:.3f}x"
        return f"{x:.2f}x" if ratio.target is not None else f"{x:.1f}x"

    def verdict(x: float) -> str:
        return "met" if x >= ratio.target else "NOT met"

    target = "—" if ratio.target is None else (
        f"≥ {ratio.target:g}x ({verdict(value)} / {verdict(fast)} / {verdict(best)})")
    return (f"| {ratio.name} | B={b_num:,} vs B={b_den:,} | {shown(value)} | {shown(fast)} "
            f"| {shown(best)} | {target} |")


def markdown_table(rows: Sequence[Row], batch_sizes: Sequence[int]) -> str:
    head = ["env", "policy", "reset", *[f"B={b:,}" for b in batch_sizes],
            "compile + first call, s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        rates = [format_rate(row.steps_per_s[b]) if b in row.steps_per_s else "—"
                 for b in batch_sizes]
        compile_s = " / ".join(f"{row.compile_s[b]:.1f}" for b in batch_sizes
                               if b in row.compile_s) or "—"
        lines.append("| " + " | ".join([row.env, row.policy, row.reset, *rates, compile_s])
                     + " |")
    return "\n".join(lines)


def markdown_report(rows: Sequence[Row], settings: Settings, machine: Dict[str, str],
                    command: str, load_end: str, total_s: float) -> str:
    rows_by_label = {f"{r.env} | {r.policy} | {r.reset}": r for r in rows}
    ratios = compute_ratios(rows_by_label, settings.batch_sizes)
    b_list = ", ".join(f"{b:,}" for b in settings.batch_sizes)
    parts = [
        "# Environment throughput",
        "",
        "Env steps per second (higher is better). JAX rows: one `jax.jit` call runs "
        f"`vmap(reset)` over B envs, then `lax.scan` over T={settings.steps} steps of "
        "`vmap(policy)` and the batched step; the first call (compile + one run) is timed apart, "
        f"then every row is timed once per round in {settings.repeats} "
        "interleaved rounds (each round starting one row later), each JAX call right after an "
        "untimed call of the same function, and "
        "steps/s = B·T / median call. Random policies get one "
        "uint32 per env per step, hashed from the step index and a per-env seed drawn once per "
        "call with `jax.random.bits`, and expand it by an integer hash "
        "(`npigym.agents.random`). Python rows: the plain-Python reference "
        "(`benchmarks/python_reference.py`), one env stepped in a Python loop, "
        f"{settings.python_steps:,} steps per timed run, reset when an episode ends. "
        "Addition-v0 uses its defaults (1 to 10 digits, sparse reward, hierarchical programs). "
        "Reset column: `auto-reset (npigym)` is `npigym.wrappers.VmapAutoResetWrapper`, which "
        "resets only the envs that ended (in a small batch of B/8, B/4 or B/2 envs, the "
        "smallest that holds them; every env when more end in a step; none when none ends); "
        "`auto-reset (npigym, per env)` is "
        "`vmap` of the per-env `AutoResetWrapper` and `auto-reset (jumanji)` is Jumanji's "
        "`VmapAutoResetWrapper`, both of which compute a reset for every env at every step.",
        "",
        f"Batch sizes: {b_list}. Compile column: seconds per batch size, in that order.",
        "",
        markdown_table(rows, settings.batch_sizes),
        "",
        "## Ratios (same run)",
        "",
    ]
    if ratios:
        parts += ["Median: from each row's median call (the table above); fast calls: from the "
                  f"median of each row's calls that took at most {FAST_SLACK:g}x its fastest, "
                  "those run in the host's fast mode (see Noise); fastest: from each row's "
                  "fastest call, the one least slowed by other jobs.", "",
                  "| ratio | at | median | fast calls | fastest | "
                  "target (median / fast calls / fastest) |",
                  "|---|---|---|---|---|---|"]

        parts += [ratio_row(*r) for r in ratios]
    else:
        parts.append("(none: the rows they need were not run)")
    parts += _render_cost(rows_by_label, settings.batch_sizes)
    parts += [
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine.items()],
        f"- load average at end: {load_end}",
        f"- total benchmark time: {total_s:.0f} s",
        "",
        "## Noise",
        "",
        "A shared 2-core VM with other jobs running: absolute numbers move by ±30% between "
        "runs (more when a neighbour is busy). Compare the ratios, which are measured in one "
        "run, rather than absolute steps/s across runs. Contention also bends the ratios: "
        "the JAX rows run XLA on both cores and a step waits for the slower one, so a busy "
        "neighbour stretches their calls more than the single-threaded Python reference's "
        "(the per-call times below show the spread); the fastest call of each row is the "
        "least disturbed estimate, hence the last ratio columns. The host also has two modes "
        "that come and go every few seconds: in the slow one the JAX rows' calls take 1.5-1.7x "
        "longer, with about 1.4x the CPU time (both threads run, but slower; Addition, "
        "B=4,096: 24-27 ms against 40-49 ms), while the single-threaded Python row is not slowed. "
        "A median over rounds of both modes is neither mode's figure; the fast-calls column is "
        "the fast mode's (each row's calls within "
        f"{FAST_SLACK:g}x of its fastest). B=1 measures dispatch and "
        "per-step overheads rather than the env; the 2 cores are saturated well before B=1,024, "
        "so B=1,024 and B=4,096 should be close on this CPU.",
        *_load_warning(machine["load average at start (1/5/15 min)"], load_end),
        "",
        "## LAST time steps in the last timed call (a check that episodes end and restart)",
        "",
        "Without a reset, an ended env keeps stepping, so its LAST steps are not episodes. "
        "Snake-v1's action mask rules out moves into walls and the body, so random valid play "
        "seldom ends an episode within T steps; under `vmap` the per-env auto-reset wrappers "
        "(Jumanji's, npigym's per env) compute the reset for every env at every step all the "
        "same, and npigym's batched one runs a reset pass (B/8 envs) in every step where one "
        "ends, so their cost is measured.",
        "",
        "| env | policy | reset | " + " | ".join(f"B={b:,}" for b in settings.batch_sizes) + " |",
        "|" + "---|" * (3 + len(settings.batch_sizes)),
        *[f"| {r.env} | {r.policy} | {r.reset} | "
          + " | ".join(str(r.episodes.get(b, "—")) for b in settings.batch_sizes) + " |"
          for r in rows],
        "",
        "## Timed calls, seconds",
        "",
        *[f"- {r.env} | {r.policy} | {r.reset}: "
          + "; ".join(f"B={b:,} {_format_times(r.run_s[b])}" for b in sorted(r.run_s))
          for r in rows],
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(parts)


def _render_cost(rows: Dict[str, Row], batch_sizes: Sequence[int]) -> List[str]:
    """Canonicalize's frames per second and rendering cost per frame, from the rows with and
    without rendering: a step under npigym's batched auto-reset renders the step's image for
    every env, plus, in a step where an episode ends, one reset pass of
    ``default_resets_per_pass(B)`` envs (episodes this long never need a larger one). The cost
    per frame is the difference in time per env-step over ``1 + default_resets_per_pass(B) /
    B`` images, as if every step had a pass: a lower bound, by at most an eighth."""
    real = rows.get("Canonicalize-v0 | random | auto-reset (npigym)")
    stub = rows.get("Canonicalize-v0 (rendering stubbed) | random | auto-reset (npigym)")
    if real is None or stub is None:
        return []
    lines = ["", "## Canonicalize-v0: rendering", "",
             "| B | env steps/s = frames/s | rendering, µs per frame (per env) | "
             "share of the step |", "|---|---|---|---|"]
    for b in batch_sizes:
        if b in real.steps_per_s and b in stub.steps_per_s:
            per_step = 1 / real.steps_per_s[b]
            images = 1 + default_resets_per_pass(b) / b
            render = max(per_step - 1 / stub.steps_per_s[b], 0.0) / images
            lines.append(f"| {b:,} | {format_rate(real.steps_per_s[b])} | {render * 1e6:.2f} | "
                         f"{images * render / per_step:.0%} |")
    return lines


def _load_warning(load_start: str, load_end: str) -> List[str]:
    """A warning when other processes were busy: a 1-minute load above 1 before the run, or
    above the cores plus one after it (the benchmark itself keeps up to the cores busy)."""
    start, end = float(load_start.split(" / ")[0]), float(load_end.split(" / ")[0])
    cores = os.cpu_count() or 1
    if start <= 1.0 and end <= cores + 1:
        return []
    return ["", f"**This run was disturbed**: the 1-minute load average was {start:.1f} at the "
                f"start and {end:.1f} at the end on {cores} cores, so other processes took CPU "
                "time from it; absolute numbers are low and even the ratios are only indicative."]


def command_line(argv: Sequence[str]) -> str:
    """How to rerun this from the repository root."""
    root = _HERE.parent
    python = Path(sys.executable)
    python_text = str(python.relative_to(root)) if python.is_relative_to(root) else str(python)
    script = Path(__file__).resolve().relative_to(root)
    return shlex.join([python_text, str(script), *argv])


# ----------------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------------
def _int_list(text: str) -> Tuple[int, ...]:
    values = tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"need positive ints separated by commas, not {text!r}")
    return values


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"need a positive int, not {text!r}")
    return value


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=_int_list, default=None,
                        help="comma-separated numbers of envs (default 1,1024,4096)")
    parser.add_argument("--steps", type=_positive, default=None,
                        help="T, steps per jitted call (default 100)")
    parser.add_argument("--repeats", type=_positive, default=None,
                        help="timed calls per case and batch size; the median counts (default 5)")
    parser.add_argument("--python-steps", type=_positive, default=None,
                        help="steps per timed run of the Python reference (default 100000)")
    parser.add_argument("--envs", default=None,
                        help="comma-separated filters; a case runs if one is a substring of its "
                             "'env | policy | reset' label (case-insensitive), e.g. "
                             "'Snake' or 'Addition-v0 | random'")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: B=1,4, 5 steps, 1 repeat, 200 Python steps, "
                             "XLA's cheaper compile (timings are not meaningful)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="markdown report to write (default "
                             "benchmarks/results/env_throughput.md)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = dict(batch_sizes=(1, 4) if quick else (1, 1024, 4096), steps=5 if quick else 100,
                    repeats=1 if quick else 5, python_steps=200 if quick else 100_000)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def select_cases(cases: Sequence[Case], filters: Optional[str]) -> List[Case]:
    if not filters:
        return list(cases)
    tokens = [t.strip().lower() for t in filters.split(",") if t.strip()]
    chosen = [c for c in cases if any(t in c.label.lower() for t in tokens)]
    if not chosen:
        raise SystemExit(f"--envs {filters!r} matches no case; cases are:\n  "
                         + "\n  ".join(c.label for c in cases))
    return chosen


def measure(cases: Sequence[Case], settings: Settings, log: Callable[[str], None]) -> List[Row]:
    """Compile every case first, then time them in interleaved rounds.

    Interleaving spreads a busy neighbour's bursts over all cases instead of one, so the ratios
    between rows of one run stay meaningful on a shared machine; each round starts one case
    later than the last, so no row always follows the same one. Every JAX call is timed after
    an untimed call of the same function (see :meth:`JaxCase.prepare`).
    """
    prepared = []
    for case in cases:
        measurements = case.prepare(settings)
        for m in measurements:
            compiled = "" if m.compile_s is None else f"compile + first call {m.compile_s:5.1f} s"
            log(f"  prepared {case.label:<58} B={m.batch_size:<5} {compiled}")
        prepared.append((case, measurements))
    flat = [m for _, measurements in prepared for m in measurements]
    for repeat in range(settings.repeats):
        start = repeat % len(flat)
        for m in flat[start:] + flat[:start]:
            seconds, m.episodes = m.run(repeat)
            m.times.append(seconds)
        log(f"  timed round {repeat + 1}/{settings.repeats}")
    rows = []
    for case, measurements in prepared:
        row = Row(case.env, case.policy, case.reset)
        for m in measurements:
            b = m.batch_size
            row.steps_per_s[b] = m.steps / statistics.median(m.times)
            row.fast_steps_per_s[b] = m.steps / statistics.median(fast_calls(m.times))
            row.best_steps_per_s[b] = m.steps / min(m.times)
            row.run_s[b] = m.times
            row.episodes[b] = m.episodes
            if m.compile_s is not None:
                row.compile_s[b] = m.compile_s
            log(f"  {case.label:<58} B={b:<5} {format_rate(row.steps_per_s[b]):>7} steps/s  "
                f"runs {_format_times(m.times)}")
        rows.append(row)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    """Run the benchmark, print the table and write the markdown report; returns the rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cases = select_cases(default_cases(), args.envs)
    if args.list:
        print("\n".join(c.label for c in cases))
        return []
    settings = Settings(tuple(args.batch_sizes), args.steps, args.repeats, args.python_steps,
                        QUICK_COMPILER_OPTIONS if args.quick else None)
    machine = machine_description()
    print(", ".join(f"{k}: {v}" for k, v in machine.items()), flush=True)
    start = time.perf_counter()
    rows = measure(cases, settings, lambda line: print(line, flush=True))
    total_s = time.perf_counter() - start
    load_end = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    report = markdown_report(rows, settings, machine, command_line(argv), load_end, total_s)
    print()
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"wrote {args.output}")
    return rows


if __name__ == "__main__":
    main()
