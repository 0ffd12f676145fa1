"""Shared by the composition tests: whole episodes in one jitted loop, and hand-written skills.

The hand-written policies act from observations only, as a trained policy does, so binding
them as skills tests the machine's skill mode without training anything.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from npigym.envs.addition import Addition
from npigym.envs.addition import constants as ac
from npigym.envs.machine.skill import Skill
from npigym.envs.multiplication import Multiplication
from npigym.envs.multiplication import constants as mc


def _digit(cell):
    return jnp.where((cell > 0) & (cell < 11), cell - 1, 0)


def _call(program, a0=0, a1=0):
    return jnp.stack([jnp.asarray(program), jnp.asarray(a0), jnp.asarray(a1),
                      jnp.asarray(0)]).astype(jnp.int32)


def add_macro_act(params, memory, obs, first, invalid):
    """Addition-macro's ADD from its observation: ADD1 and LSHIFT in turn until the column
    under the pointers is empty (memory: decisions made)."""
    del params, invalid
    k = jnp.where(first, 0, memory)
    cells = obs.local[:3]
    empty = jnp.all((cells == ac.BLANK) | (cells == ac.SENTINEL))
    action = jnp.where(k % 2 == 1, _call(ac.LSHIFT), jnp.where(empty, _call(ac.RETURN),
                                                               _call(ac.ADD1)))
    return action, k + 1


def mul_act(params, memory, obs, first, invalid):
    """MUL from Multiplication's observation (memoryless): COMMIT a pending sum, ADD while the
    digit's additions are short of it, NEXT, RETURN past the multiplier."""
    del params, first, invalid
    b_cell, reps, pending = obs.local[4], obs.local[5], obs.local[6]
    more = (b_cell > 0) & (b_cell < 11)
    call = jnp.where(pending == 1, mc.COMMIT,
                     jnp.where(~more, mc.RETURN, jnp.where(reps < _digit(b_cell), mc.ADD,
                                                           mc.NEXT)))
    return _call(call), memory


def zero_memory():
    return jnp.zeros((), jnp.int32)


def add_skill(budget: Optional[int] = None) -> Skill:
    return Skill(Addition(max_digits=3, modes="macro"), "ADD", params={}, act=add_macro_act,
                 initial_memory=zero_memory, budget=budget, name="add-by-hand")


def mul_skill(add: Optional[Skill] = None) -> Skill:
    """MUL by hand, on a Multiplication whose ADD is ``add`` (a skill in a skill) or builtin."""
    env = Multiplication(max_digits=2, skills=None if add is None else {"ADD": add})
    return Skill(env, "MUL", params={}, act=mul_act, initial_memory=zero_memory,
                 name="mul-by-hand")


def make_episode_runner(env: Any, policy: Optional[Callable] = None, max_steps: int = 100_000):
    """``run(keys) -> dict`` (jitted): a batch of episodes to their end with the expert (or
    ``policy(state) -> action``), returning final states, success, returns and step counts.

    The episode's state stops changing once it ends (its later steps are discarded)."""
    act = policy or env.expert_action

    @jax.jit
    def run(keys):
        state, ts = jax.vmap(env.reset)(keys)
        n = keys.shape[0]
        carry = dict(state=state, done=jnp.zeros(n, bool), success=jnp.zeros(n, bool),
                     ret=jnp.zeros(n), steps=jnp.zeros(n, jnp.int32),
                     skill_steps=jnp.zeros(n, jnp.int32), invalid=jnp.zeros(n, jnp.int32),
                     t=jnp.zeros((), jnp.int32))

        def cond(c):
            return ~jnp.all(c["done"]) & (c["t"] < max_steps)

        def body(c):
            new, ts = jax.vmap(env.step)(c["state"], jax.vmap(act)(c["state"]))
            live = ~c["done"]
            keep = jax.tree.map(lambda a, b: jnp.where(
                live.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, c["state"])
            return dict(state=keep, done=c["done"] | ts.last(),
                        success=c["success"] | (live & ts.last() & ts.extras["success"]),
                        ret=c["ret"] + jnp.where(live, ts.reward, 0.0),
                        steps=c["steps"] + live,
                        skill_steps=c["skill_steps"] + jnp.where(
                            live, ts.extras.get("skill_steps", 0), 0),
                        invalid=c["invalid"] + (live & ts.extras["invalid_action"]),
                        t=c["t"] + 1)

        return jax.lax.while_loop(cond, body, carry)

    return run


def episodes(env: Any, count: int, seed: int = 0, **kwargs) -> Dict[str, Any]:
    keys = jax.random.split(jax.random.PRNGKey(seed), count)
    return jax.device_get(make_episode_runner(env, **kwargs)(keys))


def row_int(row: np.ndarray) -> int:
    """A pad row's number (blank: 0)."""
    digits = "".join(str(int(v) - 1) for v in row if 0 < v < 11)
    return int(digits or 0)
