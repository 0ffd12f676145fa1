"""Supervised NPI training on expert traces: loss, jitted update, adaptive curriculum.

The loss of a token is NPI's negative log-likelihood (Eq. 6-8): the next program (softmax of
``M_key . k_t`` over the task's programs), the arguments the next program takes, and the end
bit, with teacher forcing (the inputs are the trace's, whatever the model predicted). A batch
holds ``batch_rows`` packed rows of every task (``npigym.agents.npi.data``); the loss is the
mean over a task's real tokens, summed over tasks.

Rows are sampled by program (``sampling``):

- ``"programs"`` (default): each of a task's programs equally often, whatever its share of the
  data (a sort has a thousand COMPSWAP frames per BUBBLESORT frame);
- ``"rows"``: uniformly over the data;
- ``"curriculum"``: NPI's adaptive curriculum: every ``curriculum_every`` updates each
  program's prediction error (the fraction of its tokens with a wrong program, argument or end
  bit, teacher forced) is re-estimated, and programs are sampled with
  ``softmax(error / curriculum_temperature)``.

``hard_fraction`` of every batch replays rows that still hold a wrong prediction (found at the
same re-estimates), as keras_npi retrains on the problems it gets wrong, and the wrong tokens
themselves weigh ``1 + hard_token_weight`` in the loss. A per-program error hides a rare
mistake: 9 + 9 + carry written as 8 is 17 tokens of 56,000 in the addition traces, and one
wrong column fails every long sum; replaying its rows fixes it. ``keep_best`` returns the
parameters with the fewest wrong training tokens seen at an estimate (or the last ones).

The optimiser is Adam (the paper: 1e-4, x0.95 every 10,000 updates, batch 1; ``lr_schedule=
"paper"`` applies that decay to ``learning_rate``), after global-norm clipping; a 0/1
``trainable`` mask freezes parameters (the MAX experiment trains only new memory rows).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from npigym.agents.npi.data import Packed, Targets
from npigym.agents.npi.model import NPIModel, Params, StepOutput, trainable_mask

SAMPLINGS = ("programs", "rows", "curriculum")
LR_SCHEDULES = ("constant", "paper")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        num_updates: gradient updates.
        batch_rows: packed rows per task per update (a row holds one or more whole frames).
        learning_rate: Adam's (initial) learning rate.
        lr_schedule: ``"constant"`` or ``"paper"`` (x ``lr_decay_rate`` every
            ``lr_decay_every`` updates, staircase).
        lr_decay_every, lr_decay_rate: the paper's 10,000 and 0.95.
        max_grad_norm: global-norm clipping.
        sampling: ``"programs"``, ``"rows"`` or ``"curriculum"`` (module docstring).
        curriculum_temperature: softmax temperature over program errors.
        curriculum_every: updates between error estimates (the paper: 1,000), over all rows.
        hard_fraction: share of each task's batch drawn from rows with a wrong prediction at
            the last estimate (0 turns it off).
        hard_token_weight: extra loss weight of the tokens that were wrong at the last
            estimate (a wrong token weighs ``1 + hard_token_weight``): a replayed row holds
            one or two wrong tokens among dozens of right ones, whose mean would drown them.
        error_chunk: rows per jitted call when estimating errors.
        program_weight, args_weight, end_weight: weights of the three loss terms.
        end_mode: how traces become call sequences (``npigym.agents.npi.data``).
        seed: initialisation and sampling seed.
        log_every: updates between logged records.
        time_limit_s: stop early after this many seconds of training (None: no limit).
        keep_best: return the parameters with the fewest wrong training tokens (teacher
            forced) among the error estimates and the end, not just the last ones: a late
            loss spike (Adam on a nearly solved set) must not undo a perfect model.
    """

    num_updates: int = 5000
    batch_rows: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    lr_decay_every: int = 10_000
    lr_decay_rate: float = 0.95
    max_grad_norm: float = 1.0
    sampling: str = "programs"
    curriculum_temperature: float = 0.1
    curriculum_every: int = 500
    hard_fraction: float = 0.25
    hard_token_weight: float = 4.0
    error_chunk: int = 1024
    program_weight: float = 1.0
    args_weight: float = 1.0
    end_weight: float = 1.0
    end_mode: str = "auto"
    seed: int = 0
    log_every: int = 100
    time_limit_s: Optional[float] = None
    keep_best: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.num_updates >= 0, "num_updates must be >= 0"),
            (self.batch_rows >= 1, "batch_rows must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}"),
            (self.lr_decay_every >= 1 and 0 < self.lr_decay_rate <= 1,
             "lr_decay_every must be >= 1 and lr_decay_rate in (0, 1]"),
            (self.max_grad_norm > 0, "max_grad_norm must be > 0"),
            (self.sampling in SAMPLINGS, f"sampling must be one of {SAMPLINGS}"),
            (self.curriculum_temperature > 0, "curriculum_temperature must be > 0"),
            (self.curriculum_every >= 1 and self.error_chunk >= 1,
             "curriculum_every and error_chunk must be >= 1"),
            (0 <= self.hard_fraction < 1, "hard_fraction must be in [0, 1)"),
            (self.hard_token_weight >= 0, "hard_token_weight must be >= 0"),
            (min(self.program_weight, self.args_weight, self.end_weight) >= 0,
             "loss weights must be >= 0"),
            (self.end_mode in ("auto", "call", "return"),
             "end_mode must be 'auto', 'call' or 'return'"),
            (self.log_every >= 1, "log_every must be >= 1"),
            (self.time_limit_s is None or self.time_limit_s > 0, "time_limit_s must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}, got {self}")


# ----------------------------------------------------------------------------------------------
# Loss.
# ----------------------------------------------------------------------------------------------
class TokenStats(NamedTuple):
    """Per-token losses and correctness (leading (B, T))."""

    program_nll: chex.Array
    args_nll: chex.Array
    end_nll: chex.Array
    program_ok: chex.Array
    args_ok: chex.Array
    end_ok: chex.Array


def token_stats(out: StepOutput, targets: Targets) -> TokenStats:
    """NLL and argmax correctness of the three heads at every token (the end bit only where
    ``targets.end_mask``, the arguments only the next program's)."""
    program_nll = optax.softmax_cross_entropy_with_integer_labels(
        out.program_logits, targets.program.astype(jnp.int32))
    args_nll = jnp.zeros_like(program_nll)
    args_ok = jnp.ones(program_nll.shape, bool)
    for s, logits in enumerate(out.arg_logits):
        label = targets.args[..., s].astype(jnp.int32)
        used = targets.arg_mask[..., s]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, label)
        args_nll += jnp.where(used, nll, 0.0)
        args_ok &= ~used | (jnp.argmax(logits, -1) == label)
    end_nll = optax.sigmoid_binary_cross_entropy(out.end_logit, targets.end)
    return TokenStats(
        program_nll=program_nll, args_nll=args_nll,
        end_nll=jnp.where(targets.end_mask, end_nll, 0.0),
        program_ok=jnp.argmax(out.program_logits, -1) == targets.program,
        args_ok=args_ok,
        end_ok=~targets.end_mask | ((out.end_logit >= 0) == (targets.end > 0.5)))


def task_loss(model: NPIModel, config: TrainConfig, params: Params, task: str, batch: Packed,
              weight: Optional[chex.Array] = None) -> Tuple[chex.Array, Dict[str, chex.Array]]:
    """NLL summed over the batch's real tokens (each times ``weight``, default 1) over their
    number, and (unweighted) accuracy metrics."""
    out = model.unroll(params, task, batch.tokens)
    stats = token_stats(out, batch.targets)
    valid = batch.targets.valid
    chex.assert_equal_shape([stats.program_nll, valid])
    count = jnp.maximum(valid.sum(), 1)
    weight = jnp.ones(valid.shape) if weight is None else weight

    def mean(x):
        return jnp.sum(jnp.where(valid, x, 0.0)) / count

    def weighted(x):
        return mean(weight * x)

    loss = (config.program_weight * weighted(stats.program_nll)
            + config.args_weight * weighted(stats.args_nll)
            + config.end_weight * weighted(stats.end_nll))
    all_ok = stats.program_ok & stats.args_ok & stats.end_ok
    metrics = {"loss": loss, "program_acc": mean(stats.program_ok),
               "args_acc": mean(stats.args_ok), "end_acc": mean(stats.end_ok),
               "token_acc": mean(all_ok)}
    return loss, metrics


# ----------------------------------------------------------------------------------------------
# The update.
# ----------------------------------------------------------------------------------------------
class TrainState(NamedTuple):
    params: Params
    opt_state: optax.OptState
    step: chex.Array


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    """Constant, or the paper's staircase decay (x ``lr_decay_rate`` every
    ``lr_decay_every`` updates)."""
    if config.lr_schedule == "paper":
        return optax.exponential_decay(config.learning_rate, config.lr_decay_every,
                                       config.lr_decay_rate, staircase=True)
    return optax.constant_schedule(config.learning_rate)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam after global-norm clipping."""
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(learning_rate_schedule(config)))


def sample_rows(probs: chex.Array, hard_probs: chex.Array, key: chex.PRNGKey, rows: int,
                hard_rows: int) -> chex.Array:
    """Indices of ``rows`` packed rows drawn with replacement: ``hard_rows`` of them with
    probabilities ``hard_probs`` (rows still mispredicted), the rest with ``probs``."""
    easy_key, hard_key = jax.random.split(key)
    idx = jax.random.choice(easy_key, probs.shape[0], (rows - hard_rows,), p=probs)
    if hard_rows:
        hard = jax.random.choice(hard_key, probs.shape[0], (hard_rows,), p=hard_probs)
        idx = jnp.concatenate([idx, hard])
    return idx


# Jitted functions are cached by what they close over (the model, the settings that shape the
# update), so several training runs of one model (a test suite, a benchmark's settings) compile
# once; ``make_model`` returns one object per (config, table) for the same reason.
_UPDATES: Dict[Any, Callable[..., Any]] = {}
_ROW_ERRORS: Dict[Any, Callable[..., Any]] = {}


def _update_key(config: TrainConfig) -> Tuple[Any, ...]:
    """The settings the jitted update depends on (not the run length, logging or seed)."""
    return (config.batch_rows, config.learning_rate, config.lr_schedule, config.lr_decay_every,
            config.lr_decay_rate, config.max_grad_norm, config.hard_fraction,
            config.hard_token_weight,
            config.program_weight, config.args_weight, config.end_weight)


def make_update(model: NPIModel, config: TrainConfig, tasks: Sequence[str]
                ) -> Callable[..., Tuple[TrainState, Dict[str, chex.Array]]]:
    """``update(state, data, probs, hard_probs, hard_tokens, key, trainable) -> (state,
    metrics)``, jitted: one gradient step on a batch of ``batch_rows`` rows of every task
    (``data``, ``probs``, ``hard_probs``, ``hard_tokens``: dicts by task; ``hard_tokens`` is
    (rows, T) 0/1, the tokens wrong at the last estimate); ``trainable`` is a 0/1 pytree like
    the parameters (frozen where 0) or None. The optimiser is :func:`make_optimizer`'s."""
    cache_key = (model, _update_key(config), tuple(tasks))
    if cache_key in _UPDATES:
        return _UPDATES[cache_key]
    optimizer = make_optimizer(config)
    hard_rows = round(config.batch_rows * config.hard_fraction)

    def loss_fn(params, batches, weights):
        total, metrics = 0.0, {}
        for task in tasks:
            loss, m = task_loss(model, config, params, task, batches[task], weights[task])
            total += loss
            metrics.update({f"{task}/{k}": v for k, v in m.items()})
        return total, metrics

    @jax.jit
    def update(state: TrainState, data: Mapping[str, Packed], probs: Mapping[str, chex.Array],
               hard_probs: Mapping[str, chex.Array], hard_tokens: Mapping[str, chex.Array],
               key: chex.PRNGKey, trainable: Optional[Params] = None
               ) -> Tuple[TrainState, Dict[str, chex.Array]]:
        keys = jax.random.split(key, len(tasks))
        batches, weights = {}, {}
        for t, k in zip(tasks, keys):
            idx = sample_rows(probs[t], hard_probs[t], k, config.batch_rows, hard_rows)
            batches[t] = jax.tree.map(lambda x, idx=idx: x[idx], data[t])
            weights[t] = 1.0 + config.hard_token_weight * hard_tokens[t][idx].astype(jnp.float32)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batches, weights)
        if trainable is not None:
            grads = jax.tree.map(lambda g, m: g * m, grads, trainable)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        if trainable is not None:  # Adam's epsilon and momentum must not move frozen weights
            updates = jax.tree.map(lambda u, m: u * m, updates, trainable)
        params = optax.apply_updates(state.params, updates)
        metrics["loss"] = loss
        metrics["grad_norm"] = optax.tree.norm(grads)
        return TrainState(params, opt_state, state.step + 1), metrics

    _UPDATES[cache_key] = update
    return update


# ----------------------------------------------------------------------------------------------
# Sampling: uniform over programs, over rows, or NPI's adaptive curriculum.
# ----------------------------------------------------------------------------------------------
def row_probs(row_program: np.ndarray, weights: Mapping[int, float]) -> np.ndarray:
    """Probability of each row: its program's weight shared among the program's rows."""
    row_program = np.asarray(row_program)
    counts = np.bincount(row_program)
    w = np.asarray([weights.get(int(p), 0.0) / counts[p] for p in row_program], np.float64)
    return (w / w.sum()).astype(np.float32)


def program_weights(sampling: str, programs: Sequence[int], errors: Optional[Mapping[int, float]]
                    = None, temperature: float = 1.0, row_counts: Optional[Mapping[int, int]]
                    = None) -> Dict[int, float]:
    """Sampling weight of each program (memory row) of a task."""
    if sampling == "rows":
        return {p: float(row_counts[p]) for p in programs}
    if sampling == "curriculum" and errors is not None:
        e = np.asarray([errors[p] for p in programs]) / temperature
        w = np.exp(e - e.max())
        return {p: float(x / w.sum()) for p, x in zip(programs, w)}
    return {p: 1.0 / len(programs) for p in programs}


def make_row_errors(model: NPIModel, task: str) -> Callable[[Params, Packed], chex.Array]:
    """``wrong(params, rows) -> (rows, T)`` jitted: the tokens with any wrong prediction
    (program, used argument or end bit; teacher forced)."""

    if (model, task) in _ROW_ERRORS:
        return _ROW_ERRORS[model, task]

    @jax.jit
    def wrong(params: Params, rows: Packed) -> chex.Array:
        stats = token_stats(model.unroll(params, task, rows.tokens), rows.targets)
        return ~(stats.program_ok & stats.args_ok & stats.end_ok) & rows.targets.valid

    _ROW_ERRORS[model, task] = wrong
    return wrong


def row_errors(wrong: Callable[[Params, Packed], chex.Array], params: Params, data: Packed,
               chunk: int) -> np.ndarray:
    """(rows, T) bool, the wrong tokens of every row of ``data``, ``chunk`` rows per jitted
    call (the last chunk wraps around, so every call has the same shape)."""
    n = int(data.row_program.shape[0])
    chunk = min(chunk, n)
    out = []
    for start in range(0, n, chunk):
        idx = (np.arange(start, start + chunk) % n)
        out.append(np.asarray(wrong(params, jax.tree.map(lambda x, idx=idx: x[idx], data))))
    return np.concatenate(out)[:n]


# ----------------------------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------------------------
class NonFiniteError(FloatingPointError):
    """A logged training metric went NaN or infinite; training stopped.

    Attributes:
        update: the last update whose logged metrics were finite (0: none).
        params: the parameters after that update (the last good ones).
    """

    def __init__(self, message: str, update: int, params: Params):
        super().__init__(message)
        self.update, self.params = update, params


def train(model: NPIModel, params: Params, data: Mapping[str, Packed], config: TrainConfig,
          trainable: Optional[Params] = None, log: Optional[Callable[[Dict[str, Any]], None]]
          = None) -> Tuple[Params, Dict[str, Any]]:
    """Train ``params`` on ``data`` (``{task: Packed}``, numpy or device arrays).

    Args:
        model: the NPI model.
        params: initial parameters (``model.init`` or a trained model's).
        data: packed frames per task (``npigym.agents.npi.data.pack``).
        config: the training settings.
        trainable: a 0/1 pytree like ``params`` (``model.trainable_mask``); None trains all.
        log: called with a record every ``log_every`` updates (and at the end).

    Returns:
        The trained parameters and a summary (updates, wall time, final metrics, program
        weights and errors).

    Raises:
        NonFiniteError: a logged metric (the mean over its ``log_every`` updates, which the host
            fetches anyway) is NaN or infinite; it carries the last good parameters.
    """
    tasks = sorted(data)
    optimizer = make_optimizer(config)
    update = make_update(model, config, tasks)
    if trainable is None:  # all ones: the same jitted update as a frozen core's
        trainable = trainable_mask(params, model.table)
    wrong_fns = {t: make_row_errors(model, t) for t in tasks}
    device_data = {t: jax.device_put(d) for t, d in data.items()}
    row_program = {t: np.asarray(d.row_program) for t, d in data.items()}
    row_tokens = {t: np.asarray(d.targets.valid).sum(-1) for t, d in data.items()}
    block = {t: int(d.targets.valid.shape[1]) for t, d in data.items()}
    programs = {t: [int(p) for p in np.unique(rp)] for t, rp in row_program.items()}
    counts = {t: {int(p): int(n) for p, n in zip(*np.unique(rp, return_counts=True))}
              for t, rp in row_program.items()}
    track_errors = config.sampling == "curriculum" or config.hard_fraction > 0

    def estimate(params) -> Tuple[Dict[str, Dict[int, float]], Dict[str, np.ndarray]]:
        """Per-program token error rates and per-token wrong flags, over all rows."""
        errors, wrong_tokens = {}, {}
        for t in tasks:
            wrong_tokens[t] = row_errors(wrong_fns[t], params, device_data[t],
                                         config.error_chunk)
        wrong = {t: w.sum(-1) for t, w in wrong_tokens.items()}
        for t in tasks:
            errors[t] = {p: float(wrong[t][row_program[t] == p].sum()
                                  / row_tokens[t][row_program[t] == p].sum())
                         for p in programs[t]}
        return errors, wrong_tokens

    def sampling_probs(errors, wrong_tokens) -> Tuple[Dict[str, jax.Array], ...]:
        """Row probabilities, hard-row probabilities and hard-token flags, by task."""
        probs, hard, tokens = {}, {}, {}
        wrong = {t: w.sum(-1) for t, w in wrong_tokens.items()} if wrong_tokens else None
        for t in tasks:
            w = program_weights(config.sampling, programs[t], errors[t] if errors else None,
                                config.curriculum_temperature, counts[t])
            probs[t] = row_probs(row_program[t], w)
            bad = (wrong[t] > 0) if wrong else np.zeros_like(probs[t], bool)
            hard[t] = jnp.asarray(bad / bad.sum() if bad.any() else probs[t], jnp.float32)
            probs[t] = jnp.asarray(probs[t])
            tokens[t] = jnp.asarray(wrong_tokens[t] if wrong_tokens else
                                    np.zeros((*row_tokens[t].shape, block[t]), bool))
        return probs, hard, tokens

    key = jax.random.PRNGKey(config.seed)
    state = TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
    errors, wrong = estimate(params) if track_errors else (None, None)
    probs, hard, hard_tokens = sampling_probs(errors, wrong)
    start = time.perf_counter()
    window: list = []
    record: Dict[str, Any] = {}
    best = (_total(wrong), 0, state.params) if wrong is not None else None
    good = (0, state.params)  # the last logged update with finite metrics, and its params
    for i in range(config.num_updates):
        if track_errors and i and i % config.curriculum_every == 0:
            errors, wrong = estimate(state.params)
            probs, hard, hard_tokens = sampling_probs(errors, wrong)
            if best is None or _total(wrong) < best[0]:
                best = (_total(wrong), i, state.params)
        key, sub = jax.random.split(key)
        state, metrics = update(state, device_data, probs, hard, hard_tokens, sub, trainable)
        window.append(metrics)
        elapsed = time.perf_counter() - start
        out_of_time = config.time_limit_s is not None and elapsed >= config.time_limit_s
        if (i + 1) % config.log_every == 0 or i + 1 == config.num_updates or out_of_time:
            means = jax.device_get(jax.tree.map(lambda *x: jnp.mean(jnp.stack(x)), *window))
            window = []
            record = {"update": i + 1, "wall_time": round(elapsed, 2),
                      **{k: float(v) for k, v in means.items()}}
            bad = sorted(k for k, v in record.items() if isinstance(v, float)
                         and not np.isfinite(v))
            if bad:
                first = good[0] + 1
                raise NonFiniteError(
                    f"non-finite {', '.join(bad)} ({record[bad[0]]}) in updates {first}..{i + 1}"
                    f"; stopped (last good: update {good[0]})", good[0], good[1])
            good = (i + 1, state.params)
            if errors is not None:
                record["program_error"] = _named(model, errors)
                record["hard_rows"] = {t: int(w.any(-1).sum()) for t, w in wrong.items()}
            if log is not None:
                log(record)
        if out_of_time:
            break
    final_errors, final_wrong = estimate(state.params)
    params, selected = state.params, int(state.step)
    if config.keep_best and best is not None and best[0] < _total(final_wrong):
        params, selected = best[2], best[1]
        final_errors, final_wrong = estimate(params)
    summary = {"updates": int(state.step), "wall_time": round(time.perf_counter() - start, 2),
               "final": record, "selected_update": selected,
               "program_error": _named(model, final_errors),
               "wrong_tokens": {t: int(w.sum()) for t, w in final_wrong.items()}}
    return params, summary


def _total(wrong: Mapping[str, np.ndarray]) -> int:
    return int(sum(int(w.sum()) for w in wrong.values()))


def _named(model: NPIModel, errors: Mapping[str, Mapping[int, float]]) -> Dict[str, Any]:
    return {t: {model.table.names[p]: round(e, 5) for p, e in errs.items()}
            for t, errs in errors.items()}
