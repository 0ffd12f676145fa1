"""A tiny task on the program machine, for testing the machine on its own.

A counter must be brought to a target. Primitive ``INC(amount in {1, 2})`` adds to it (invalid
past ``LIMIT``); ``ADD2`` adds 2 with two ``INC(1)`` calls; the root ``COUNT`` calls ``ADD2``
or ``INC``. It also shows how little a task has to supply: a generator, the primitive's
semantics, an expert and postconditions (plus a view).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax.numpy as jnp
from jumanji import specs

from npigym.envs.machine import (
    PRIMITIVE,
    Arg,
    Frame,
    Generator,
    Program,
    ProgramEnv,
    ProgramLibrary,
)
from npigym.envs.machine.generator import seed_word, uniform_int

LIMIT = 9
RETURN, INC, ADD2, COUNT = 0, 1, 2, 3
PROGRAMS = (
    Program("INC", (Arg("amount", ("0", "1", "2"), allowed=(1, 2)),), mode=PRIMITIVE),
    Program("ADD2", calls=("INC",)),
    Program("COUNT", calls=("ADD2", "INC")),
)


class Counter(NamedTuple):
    count: chex.Array  # () int32
    target: chex.Array  # () int32


class TargetGenerator(Generator):
    def __call__(self, key: chex.PRNGKey) -> Counter:
        target = uniform_int(seed_word(key), 2, LIMIT)
        return Counter(jnp.zeros((), jnp.int32), target)


class CounterEnv(ProgramEnv):
    def __init__(self, modes=None, **kwargs):
        super().__init__(ProgramLibrary(PROGRAMS, "COUNT", modes), TargetGenerator(), **kwargs)

    def apply_primitive(self, task, program, args):
        count = task.count + args[0]
        return task._replace(count=count), (program == INC) & (count <= LIMIT)

    def expert_call(self, task, frame: Frame):
        def call(p, a=0):
            return jnp.array([p, a, 0, 0], jnp.int32)

        left = task.target - task.count
        count = jnp.where(left >= 2, call(ADD2), jnp.where(left == 1, call(INC, 1), call(RETURN)))
        add2 = jnp.where(frame.steps < 2, call(INC, 1), call(RETURN))
        return jnp.stack([call(RETURN), call(RETURN), add2, count])[frame.program]

    def postcondition(self, task, frame: Frame):
        before: Counter = frame.snapshot
        return jnp.stack([False, False, task.count == before.count + 2,
                          task.count == task.target])[frame.program]

    def local_view(self, task):
        return jnp.stack([task.count, task.target])

    @property
    def local_view_spec(self):
        return specs.BoundedArray((2,), jnp.int32, 0, LIMIT + 2, "local")

    def progress(self, task):
        return task.count / task.target

    def default_step_limit(self, task):
        return 3 * task.target + 4
