"""The NPI model as the interpreter inside a program-machine env (Algorithm 1, jitted).

Algorithm 1 (``RUN(i, a)``) is recursive: entering a program zeroes the LSTM state, the
caller's state waits on the call stack and is resumed on return, and the loop ends after the
call made with ``r >= alpha``. Here the recursion is the env's: every decision is one
``env.step`` and the env keeps the call stack, so the interpreter keeps, next to it, an explicit
stack of LSTM states of static depth ``env.max_depth`` indexed by the observed depth:

- a decision at a depth deeper than the previous one is the first of a new frame: its state is
  zeroed (``h <- 0``) and its pending-return flag cleared;
- a decision at a shallower depth resumes the caller's state, untouched since it made the
  call (restored on return);
- NPI's end bit emitted with a call (``sigmoid(end_logit) >= alpha``) sets the frame's
  pending-return flag: the frame's next decision, after the call has returned, is the
  machine's explicit RETURN, made without consulting the model (NPI ends the loop there);
- the model may also choose RETURN (memory row 0) itself, for frames that end on an observed
  condition (``npigym.agents.npi.data``); programs trained to end that way only
  (``end_modes``: ``"return"``) ignore the end bit.

The same pure :func:`decide` runs batched inside one ``lax.while_loop`` (:func:`make_runner`)
and one decision at a time as a host policy for ``npigym.experiments.play``
(:class:`HostPolicy`). Any network with the model's ``step`` signature can drive it (the tests
use a hand-written stub).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from npigym.agents.npi.model import (
    MASKED_LOGIT,
    CoreState,
    NPIModel,
    ProgramTable,
    StepOutput,
    local_dict,
)
from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import NUM_ARGS, RETURN_ID
from npigym.envs.machine.types import Observation

ALPHA = 0.5  # the paper's end threshold
MASKS = ("library", "callable")

# step(params, local, args, program, state) -> (StepOutput, state), one decision, unbatched.
StepFn = Callable[[Any, Dict[str, chex.Array], chex.Array, chex.Array, CoreState],
                  Tuple[StepOutput, CoreState]]


class InterpreterState(NamedTuple):
    """What the interpreter keeps between decisions of one episode.

    Attributes:
        core: the LSTM state of every frame, leading (max_depth,) axis.
        pending: (max_depth,) bool, the frame's last call was made with ``r >= alpha``: its
            next decision is RETURN.
        depth: () int32, depth of the previous decision (-1 before the first).
    """

    core: CoreState
    pending: chex.Array
    depth: chex.Array


class TaskTables(NamedTuple):
    """An env's program ids against the model's memory rows (device constants).

    Attributes:
        to_row: (env programs,) memory row of each env program id.
        to_env: (memory rows,) env program id of each row, 0 (RETURN) for rows the env lacks.
        in_library: (memory rows,) bool, rows the env has.
        arg_valid: (env programs, 3, max arg size) bool, argument values each program allows.
        uses_end: (memory rows,) bool, the program's frames end with NPI's end bit (False:
            only with an explicit RETURN decision).
    """

    to_row: chex.Array
    to_env: chex.Array
    in_library: chex.Array
    arg_valid: chex.Array
    uses_end: chex.Array


def task_tables(table: ProgramTable, env: ProgramEnv,
                end_modes: Optional[Mapping[str, str]] = None) -> TaskTables:
    """The id maps between ``env``'s library and the model's memory (by program name);
    ``end_modes`` (``{name: "call" | "return"}``, the trained model's) says which programs
    ignore the end bit (default: none, NPI's semantics).

    Raises:
        ValueError: the env has programs the model has no memory row for.
    """
    names = env.library.names
    missing = [n for n in names if n not in table.names]
    if missing:
        raise ValueError(f"the model has no memory rows for {missing}; add them with "
                         "npigym.agents.npi.model.extend_params")
    to_row = np.asarray([table.names.index(n) for n in names], np.int32)
    to_env = np.zeros(table.num_programs, np.int32)
    to_env[to_row] = np.arange(len(names))
    in_library = np.zeros(table.num_programs, bool)
    in_library[to_row] = True
    width = max(table.arg_sizes)
    valid = np.zeros((len(names), NUM_ARGS, width), bool)
    lib_valid = np.asarray(env.library.arg_valid)
    valid[:, :, : lib_valid.shape[-1]] = lib_valid
    uses_end = np.asarray([(end_modes or {}).get(n, "call") != "return" for n in table.names])
    return TaskTables(jnp.asarray(to_row), jnp.asarray(to_env), jnp.asarray(in_library),
                      jnp.asarray(valid), jnp.asarray(uses_end))


def initial_state(zero_state: Callable[..., CoreState], max_depth: int) -> InterpreterState:
    """The interpreter's state before an episode's first decision."""
    return InterpreterState(core=zero_state((max_depth,)),
                            pending=jnp.zeros((max_depth,), bool),
                            depth=jnp.asarray(-1, jnp.int32))


def choose(out: StepOutput, tables: TaskTables, action_mask: chex.Array, mask: str = "library",
           alpha: float = ALPHA) -> Tuple[chex.Array, chex.Array, chex.Array]:
    """The call the model makes: ``(env program id, (3,) args, end bit)`` (unbatched).

    The program is the argmax of ``M_key . k_t`` over the env's programs (``mask="library"``)
    or over those the current frame may call (``"callable"``, the env's action mask);
    arguments are the argmax over the values the chosen program allows.
    """
    allowed = tables.in_library
    if mask == "callable":
        allowed = allowed & jnp.zeros_like(allowed).at[tables.to_row].set(action_mask)
    row = jnp.argmax(jnp.where(allowed, out.program_logits, MASKED_LOGIT))
    program = tables.to_env[row]
    args = []
    for s, logits in enumerate(out.arg_logits):
        ok = tables.arg_valid[program, s, : logits.shape[-1]]
        args.append(jnp.argmax(jnp.where(ok, logits, MASKED_LOGIT)))
    end = jax.nn.sigmoid(out.end_logit) >= alpha
    return program, jnp.stack(args).astype(jnp.int32), end


def decide(step: StepFn, params: Any, zero_state: Callable[..., CoreState], tables: TaskTables,
           state: InterpreterState, obs: Observation, mask: str = "library",
           alpha: float = ALPHA) -> Tuple[InterpreterState, chex.Array]:
    """One decision of the interpreter for one (unbatched) env: ``(state, action)``."""
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, not {mask!r}")
    d = obs.depth
    entered = d > state.depth  # a call pushed this frame: Algorithm 1 zeroes its state
    zero = zero_state()
    frame_state = jax.tree.map(lambda s, z: jnp.where(entered, z, s[d]), state.core, zero)
    pending = state.pending.at[d].set(state.pending[d] & ~entered)

    frame_row = tables.to_row[obs.program]
    out, new_frame_state = step(params, local_dict(obs.local), obs.args, frame_row, frame_state)
    program, args, end = choose(out, tables, obs.action_mask, mask, alpha)
    end &= tables.uses_end[frame_row]
    returning = pending[d] | (program == RETURN_ID)
    action = jnp.where(returning, jnp.zeros((1 + NUM_ARGS,), jnp.int32),
                       jnp.concatenate([program[None], args]))
    core = jax.tree.map(lambda s, x: s.at[d].set(x), state.core, new_frame_state)
    pending = pending.at[d].set(~returning & end)
    return InterpreterState(core, pending, d.astype(jnp.int32)), action


def model_step(model: NPIModel, task: str) -> StepFn:
    """The model's one-decision step for ``task`` in the interpreter's signature."""

    def step(params, local, args, program, state):
        return model.step(params, task, local, args, program, state)

    return step


class EpisodeStats(NamedTuple):
    """Per-episode results of :func:`make_runner` (leading (batch,) axis).

    Attributes:
        success: the root returned with its postcondition holding.
        steps: decisions taken.
        truncated: cut at the step limit.
        first_failure: env id of the first program that returned with its postcondition
            failing (-1 if none did): where the execution went wrong.
        failure_step: the decision at which it did (-1 if none).
        diverge_step: with ``diagnose``, the first decision that differs from the expert's
            (-1 if none, or without ``diagnose``): where the model first went wrong.
        diverge_frame: env id of the program whose frame made that decision (-1 if none).
        diverge_expert: the expert's action there, ``(program, arg0, arg1, arg2)``.
        diverge_model: the model's action there.
    """

    success: chex.Array
    steps: chex.Array
    truncated: chex.Array
    first_failure: chex.Array
    failure_step: chex.Array
    diverge_step: chex.Array
    diverge_frame: chex.Array
    diverge_expert: chex.Array
    diverge_model: chex.Array


def make_runner(env: ProgramEnv, step: StepFn, zero_state: Callable[..., CoreState],
                tables: TaskTables, mask: str = "library", alpha: float = ALPHA,
                diagnose: bool = False) -> Callable[[Any, chex.Array], EpisodeStats]:
    """``run(params, keys) -> EpisodeStats``, jitted: one episode per key, vmapped, in one
    ``lax.while_loop`` that stops when every episode has ended (the env's step limit bounds
    it). Ended episodes keep stepping (their results are frozen), which costs nothing extra
    under ``vmap`` and saves selecting the env state every step.

    ``diagnose=True`` also runs the env's expert on every state and records the first decision
    that differs from it (``EpisodeStats.diverge_*``); it costs an expert call per decision."""
    if diagnose and not env.has_expert:
        raise ValueError("diagnose needs an env with an expert (a hierarchical posing)")
    num_args = jnp.asarray(np.asarray(env.library.num_args), jnp.int32)

    def canonical(action):  # unused argument slots as 0, as the machine reads them
        uses = jnp.arange(NUM_ARGS) < num_args[action[..., 0]][..., None]
        return action.at[..., 1:].set(jnp.where(uses, action[..., 1:], 0))

    def decide_one(params, istate, obs):
        return decide(step, params, zero_state, tables, istate, obs, mask, alpha)

    @jax.jit
    def run(params: Any, keys: chex.Array) -> EpisodeStats:
        batch = keys.shape[0]
        env_state, ts = jax.vmap(env.reset)(keys)
        istate = jax.vmap(lambda _: initial_state(zero_state, env.max_depth))(keys)
        minus = jnp.full((batch,), -1, jnp.int32)
        false = jnp.zeros((batch,), bool)
        minus4 = jnp.full((batch, 1 + NUM_ARGS), -1, jnp.int32)
        stats = EpisodeStats(false, jnp.zeros((batch,), jnp.int32), false, minus, minus,
                             minus, minus, minus4, minus4)

        def cond(carry):
            _, _, _, done, _ = carry
            return ~jnp.all(done)

        def body(carry):
            env_state, ts, istate, done, stats = carry
            istate, action = jax.vmap(decide_one, in_axes=(None, 0, 0))(
                params, istate, ts.observation)
            live = ~done
            if diagnose:
                expert = canonical(jax.vmap(env.expert_action)(env_state).astype(jnp.int32))
                action = canonical(action)
                differs = live & jnp.any(expert != action, axis=-1) & (stats.diverge_step < 0)
                program = ts.observation.program.astype(jnp.int32)
                stats = stats._replace(
                    diverge_step=jnp.where(differs, stats.steps, stats.diverge_step),
                    diverge_frame=jnp.where(differs, program, stats.diverge_frame),
                    diverge_expert=jnp.where(differs[:, None], expert, stats.diverge_expert),
                    diverge_model=jnp.where(differs[:, None], action, stats.diverge_model))
            env_state, ts = jax.vmap(env.step)(env_state, action)
            last = ts.last() & live
            failed = (ts.extras["returned_program"] >= 0) & ~ts.extras["postcondition"]
            first = live & failed & (stats.first_failure < 0)
            stats = stats._replace(
                success=stats.success | (last & ts.extras["success"]),
                steps=stats.steps + live.astype(jnp.int32),
                truncated=stats.truncated | (last & (ts.discount > 0)),
                first_failure=jnp.where(first, ts.extras["returned_program"],
                                        stats.first_failure),
                failure_step=jnp.where(first, stats.steps, stats.failure_step))
            return env_state, ts, istate, done | last, stats

        carry = (env_state, ts, istate, false, stats)
        return jax.lax.while_loop(cond, body, carry)[-1]

    return run


def evaluate(run: Callable[[Any, chex.Array], EpisodeStats], params: Any, key: chex.PRNGKey,
             num_episodes: int, batch_size: int = 64) -> Dict[str, Any]:
    """``num_episodes`` episodes in batches of ``batch_size``; success rate and more."""
    keys = jax.random.split(key, num_episodes)
    parts = []
    start = time.perf_counter()
    for i in range(0, num_episodes, batch_size):
        parts.append(jax.device_get(run(params, keys[i:i + batch_size])))
    stats = EpisodeStats(*(np.concatenate(x) for x in zip(*parts)))
    return {"episodes": num_episodes, "success": float(stats.success.mean()),
            "steps": float(stats.steps.mean()), "truncated": float(stats.truncated.mean()),
            "seconds": round(time.perf_counter() - start, 2), "stats": stats}


class HostPolicy:
    """The interpreter as ``policy(state, timestep) -> action`` for
    ``npigym.experiments.play``: it keeps the LSTM state stack between calls, so it must see
    one episode's decisions in order from the first (call :meth:`reset` between episodes;
    a ``timestep.first()`` resets it too)."""

    def __init__(self, step: StepFn, params: Any, zero_state: Callable[..., CoreState],
                 tables: TaskTables, max_depth: int, mask: str = "library",
                 alpha: float = ALPHA):
        self._params = params
        self._initial = jax.jit(lambda: initial_state(zero_state, max_depth))
        self._decide = jax.jit(lambda p, s, o: decide(step, p, zero_state, tables, s, o, mask,
                                                      alpha))
        self.reset()

    def reset(self) -> None:
        """Forget the LSTM states: call before a new episode."""
        self.state = self._initial()

    def __call__(self, env_state: Any, timestep: Any) -> np.ndarray:
        if bool(timestep.first()):
            self.reset()
        self.state, action = self._decide(self._params, self.state, timestep.observation)
        return np.asarray(action)
