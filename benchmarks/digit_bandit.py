"""ADD1's first decision as a contextual bandit: does the actor-critic learn the digit table?

In the hierarchical Addition agent (issue 4 (c)), ADD1 starts from the four cells under the
pointers and must call ``WRITE(OUT, (in1 + in2 + carry) % 10)``. Seeds of the full agent
stalled with that table partly wrong: for some cell triples the right digit's probability had
collapsed below 1e-3. This script poses only that decision, with the agent's own network
(``make_network`` on Addition-v0, one decision from an ADD1 frame) and the actor-critic's loss
pieces (policy gradient with the value head as baseline, entropy bonus, optional
``KL(uniform || policy)``, Adam with the A2C defaults), so a regulariser can be judged in
seconds instead of a 30-minute run.

Each update samples ``--batch`` cell triples uniformly from every triple ADD1 can meet (IN1 and
IN2 blank or a digit, not both blank; the carry cell blank or 1; OUT blank) and pays 1 for the
right call. Seeds train side by side (``jax.vmap``). Reported per seed: the greedy policy's
accuracy over all triples and the smallest probability any triple gives its right call.

Usage (from the repository root)::

    .venv/bin/python benchmarks/digit_bandit.py
    .venv/bin/python benchmarks/digit_bandit.py --updates 500 --output /tmp/bandit.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import List, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import npigym
from npigym.agents.actor_critic import A2CConfig
from npigym.agents.networks import NetworkConfig, make_network
from npigym.envs.addition import constants as c
from npigym.envs.machine.types import Observation

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "digit_bandit.md"


@dataclasses.dataclass(frozen=True)
class Arm:
    """One row of the table: the cell encoding and the regularisers."""

    ordinal: bool
    entropy_cost: float
    uniform_kl_cost: float

    @property
    def label(self) -> str:
        cells = "one-hot + thermometer" if self.ordinal else "one-hot"
        kl = f", uniform KL {self.uniform_kl_cost:g}" if self.uniform_kl_cost else ""
        return f"{cells}; entropy {self.entropy_cost:g}{kl}"


ARMS = [Arm(o, e, k) for o in (False, True)
        for e, k in ((0.01, 0.0), (0.03, 0.0), (0.1, 0.0), (0.01, 0.03))]
SMOKE_ARMS = [Arm(True, 0.01, 0.03)]


def add1_triples() -> Tuple[np.ndarray, np.ndarray]:
    """Every (IN1, IN2, CARRY, OUT) cell code ADD1 can start from, and its right digit."""
    cells, digits = [], []
    for a in range(c.BLANK, c.SENTINEL):
        for b in range(c.BLANK, c.SENTINEL):
            if a == c.BLANK and b == c.BLANK:
                continue  # an empty column: ADD returns instead of calling ADD1
            for carry in (c.BLANK, 2):  # blank or the digit 1
                cells.append((a, b, carry, c.BLANK))
                digits.append((max(a - 1, 0) + max(b - 1, 0) + (carry == 2)) % 10)
    return np.asarray(cells, np.int32), np.asarray(digits, np.int32)


def add1_observation(env) -> Observation:
    """The observation of a fresh ADD1 frame (the expert's first call from ADD)."""
    state, _ = env.reset(jax.random.PRNGKey(0))
    state, timestep = env.step(state, env.expert_action(state))
    assert int(timestep.observation.program) == c.ADD1
    return timestep.observation


def run_arm(arm: Arm, seeds: int, updates: int, batch: int, log_every: int
            ) -> Tuple[np.ndarray, np.ndarray, List[Tuple[int, np.ndarray]], float]:
    """Train ``seeds`` networks; returns final accuracy and min probability per seed, the
    accuracy curve, and the wall time (compile included)."""
    env = npigym.make("Addition-v0", max_digits=5)
    net = make_network(env, NetworkConfig(ordinal_encoding=arm.ordinal))
    a2c = A2CConfig()
    cells, digits = (jnp.asarray(x) for x in add1_triples())
    n = cells.shape[0]
    template = add1_observation(env)

    def observe(local):
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (local.shape[0], *x.shape)),
                            template)._replace(local=local)

    right_call = jnp.stack([jnp.full((n,), c.WRITE), jnp.full((n,), c.OUT), digits,
                            jnp.zeros((n,), jnp.int32)], axis=-1)
    optimizer = optax.chain(optax.clip_by_global_norm(a2c.max_grad_norm),
                            optax.adam(a2c.learning_rate, eps_root=a2c.adam_eps_root))

    def init(key):
        params = net.init(key, observe(cells[:2]), jnp.ones((2,), bool))
        return params, optimizer.init(params)

    def loss(params, key):
        # A2C's loss written out for one-step episodes: make_loss takes a time-major rollout
        # (lambda-returns, frame credit), and here the return is the reward itself.
        pick, act = jax.random.split(key)
        i = jax.random.randint(pick, (batch,), 0, n)
        _, out = net.step(params, net.initial_state(batch), observe(cells[i]),
                          jnp.ones((batch,), bool), act)
        reward = jnp.all(out.policy.action == right_call[i], axis=-1).astype(jnp.float32)
        advantage = reward - jax.lax.stop_gradient(out.value)
        return (-jnp.mean(advantage * out.policy.log_prob)
                + a2c.value_cost * 0.5 * jnp.mean((reward - out.value) ** 2)
                - arm.entropy_cost * jnp.mean(out.policy.entropy)
                + arm.uniform_kl_cost * jnp.mean(out.policy.uniform_kl))

    def update(carry, key):
        params, opt_state = carry
        grads = jax.grad(loss)(params, key)
        step, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, step), opt_state), None

    def evaluate(params):
        _, out = net.step(params, net.initial_state(n), observe(cells), jnp.ones((n,), bool),
                          None, greedy=True)
        accuracy = jnp.mean(jnp.all(out.policy.action == right_call, axis=-1))
        # log pi(right call | triple), teacher-forced
        _, forced = net.step(params, net.initial_state(n), observe(cells),
                             jnp.ones((n,), bool), None, greedy=True, action=right_call)
        return accuracy, jnp.exp(jnp.min(forced.policy.log_prob))

    @jax.jit
    @jax.vmap
    def train_chunk(carry, key):
        carry, _ = jax.lax.scan(update, carry, jax.random.split(key, log_every))
        return carry, evaluate(carry[0])

    start = time.perf_counter()
    init_key, train_key = jax.random.split(jax.random.PRNGKey(0))
    carry = jax.jit(jax.vmap(init))(jax.random.split(init_key, seeds))
    chunks = updates // log_every
    chunk_keys = jax.random.split(train_key, chunks * seeds).reshape(chunks, seeds, -1)
    curve = []
    for k in range(chunks):
        carry, (accuracy, min_p) = train_chunk(carry, chunk_keys[k])
        curve.append(((k + 1) * log_every, np.asarray(accuracy)))
    return np.asarray(accuracy), np.asarray(min_p), curve, time.perf_counter() - start


def main(argv: List[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--log-every", type=int, default=500)
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--smoke", action="store_true", help="one arm only (a quick check)")
    args = p.parse_args(argv)
    if args.updates % args.log_every:
        p.error("--updates must be a multiple of --log-every")
    cells, _ = add1_triples()
    seeds = list(range(args.seeds))
    lines = ["# ADD1's digit table as a contextual bandit", "",
             f"The agent's network (`make_network` on Addition-v0, A2C defaults: Adam "
             f"{A2CConfig.learning_rate:g}, clip {A2CConfig.max_grad_norm:g}) takes one decision "
             f"from a fresh ADD1 frame, for {cells.shape[0]} cell triples; reward 1 for "
             f"`WRITE(OUT, (in1 + in2 + carry) % 10)`. {args.updates} updates of {args.batch} "
             f"triples per seed. Greedy accuracy over all triples after each "
             f"{args.log_every} updates; \"min p\" is the smallest probability any triple gives "
             "its right call at the end.", "",
             "| cells; regulariser | " + " | ".join(f"seed {s}: accuracy / min p" for s in seeds)
             + " | accuracy by updates (per seed) | s |",
             "|---|" + "---|" * len(seeds) + "---|---|"]
    for arm in SMOKE_ARMS if args.smoke else ARMS:
        accuracy, min_p, curve, seconds = run_arm(arm, args.seeds, args.updates, args.batch,
                                                  args.log_every)
        cells_out = [f"{a:.3f} / {m:.0e}" for a, m in zip(accuracy, min_p)]
        history = "; ".join(f"{u}: " + " ".join(f"{x:.2f}" for x in acc) for u, acc in curve)
        lines.append(f"| {arm.label} | " + " | ".join(cells_out) + f" | {history} | "
                     f"{seconds:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", "## Machine", "",
              f"- {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"load average at the end {os.getloadavg()[0]:.1f}",
              f"- JAX {jax.__version__}, Python {platform.python_version()}",
              f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
              "Command: `.venv/bin/python benchmarks/digit_bandit.py "
              + " ".join(shlex.quote(a) for a in argv) + "`"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main(sys.argv[1:])
