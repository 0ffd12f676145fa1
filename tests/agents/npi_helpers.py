"""Shared pieces of the NPI tests: a tiny model config and a hand-written stub network.

The stub implements NPI's addition programs (Reed & de Freitas 2016, Fig. 3b) in the model's
``step`` signature: it reads only what the model reads (the cells under the pointers, the
frame's program) and its own recurrent state, a per-frame step counter. It gets the trace
right only if the interpreter zeroes a frame's state on entry and gives the caller its state
back on return, and turns its end bits into RETURNs at the right time.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

import npigym
from npigym import traces
from npigym.agents.npi.model import NPIConfig, ProgramTable, StepOutput, task_layout
from npigym.envs.addition import ProblemGenerator
from npigym.envs.addition import constants as c

TINY = NPIConfig(state_size=16, encoder_layers=(16,), conv_channels=(4,), program_size=8,
                 key_size=8, fuse_layers=(32,), core_sizes=(32,))

CONFIDENT = 10.0  # logit margin of the stub's choices


def addition_stub(table: ProgramTable, first_end_logit: Optional[float] = None):
    """``(step, zero_state)`` of a stub NPI that adds like the expert.

    ADD alternates ADD1 and LSHIFT and chooses RETURN itself on an empty column (an explicit
    RETURN, as ``end_mode="auto"`` trains it); ADD1, CARRY and LSHIFT put the end bit on their
    last call. ``first_end_logit`` replaces the end logit of ADD's first call (for threshold
    tests).
    """
    row = {name: table.names.index(name) for name in table.names}
    n, sizes = table.num_programs, table.arg_sizes

    def call(program, a0=0, a1=0, end=False):
        return jnp.stack([jnp.asarray(row[program]), jnp.asarray(a0), jnp.asarray(a1),
                          jnp.asarray(end).astype(jnp.int32)]).astype(jnp.int32)

    def step(params, local, args, program, k):
        cells = local[""]
        digits = jnp.where((cells > c.BLANK) & (cells < c.SENTINEL), cells - 1, 0)
        total = digits[c.IN1] + digits[c.IN2] + digits[c.CARRY]
        empty = jnp.all((cells[: c.OUT] == c.BLANK) | (cells[: c.OUT] == c.SENTINEL))
        ret = call("RETURN")
        add = jnp.where(k % 2 == 1, call("LSHIFT"), jnp.where(empty, ret, call("ADD1")))
        add1 = jnp.where(k == 0, call("WRITE", c.OUT, total % 10, total < 10),
                         call("CARRY", end=True))
        carry = jnp.stack([call("MOVE_PTR", c.CARRY, c.LEFT), call("WRITE", c.CARRY, 1),
                           call("MOVE_PTR", c.CARRY, c.RIGHT, True)])[jnp.minimum(k, 2)]
        lshift = call("MOVE_PTR", jnp.minimum(k, 3), c.LEFT, k >= 3)
        plans = {row["ADD"]: add, row["ADD1"]: add1, row["CARRY"]: carry,
                 row["LSHIFT"]: lshift}
        choice = ret
        for r, plan in plans.items():
            choice = jnp.where(program == r, plan, choice)
        end_logit = jnp.where(choice[3] == 1, CONFIDENT, -CONFIDENT)
        if first_end_logit is not None:
            end_logit = jnp.where((program == row["ADD"]) & (k == 0), first_end_logit,
                                  end_logit)
        out = StepOutput(
            program_logits=CONFIDENT * jax.nn.one_hot(choice[0], n),
            arg_logits=(CONFIDENT * jax.nn.one_hot(choice[1], sizes[0]),
                        CONFIDENT * jax.nn.one_hot(choice[2], sizes[1]),
                        jnp.zeros((sizes[2],))),
            end_logit=jnp.asarray(end_logit, jnp.float32))
        return out, k + 1

    def zero_state(batch_shape=()):
        return jnp.zeros(batch_shape, jnp.int32)

    return step, zero_state


# Expert traces shared by the NPI test modules (collecting compiles the env: seconds each).
@functools.lru_cache(maxsize=None)
def fig3b_traces():
    """The 96 + 125 env, its program table and its one-episode trace (NPI Fig. 3b)."""
    env = npigym.make("Addition-v0", generator=ProblemGenerator([(96, 125)]))
    return env, ProgramTable.build([task_layout(env)]), traces.collect(
        env, jax.random.PRNGKey(0), 1)


@functools.lru_cache(maxsize=None)
def addition_traces():
    """Random additions of 1-4 digits: the env, its table and 16 episodes."""
    env = npigym.make("Addition-v0", min_digits=1, max_digits=4)
    return env, ProgramTable.build([task_layout(env)]), traces.collect(
        env, jax.random.PRNGKey(2), 16)


@functools.lru_cache(maxsize=None)
def sorting_traces():
    """Random sorts of length 2-5: the env, its table and 16 episodes."""
    env = npigym.make("Sorting-v0", min_length=2, max_length=5)
    return env, ProgramTable.build([task_layout(env)]), traces.collect(
        env, jax.random.PRNGKey(1), 16)
