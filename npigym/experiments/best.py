"""Best-checkpoint selection (``keep_best``): keep each seed's params that score best on a fixed
validation set.

At every checkpoint of a run with ``keep_best=true``, :class:`BestKeeper` evaluates every seed's
greedy policy on the same ``best_episodes`` instances at size ``best_size`` (drawn from
:data:`VALIDATION_KEY`, which the final evaluation's keys, ``10_000 + size``, never equal) and,
for each seed whose validation success is at least its best so far (ties go to the later call),
keeps its params. The kept params of all seeds (each seed's from its own best call) are one
file, ``RUN/best/params.npz``, holding the leaves and a JSON record (per seed: the call, env
steps, validation success and return; the validation size and episodes; a digest of the
leaves), written atomically; ``RUN/best/best.json`` is a readable copy of the record. Training
never reads them, so a resumed run trains exactly as the uninterrupted one; the keeper restores
its record and params from the file, so it keeps the same best as well.

When. The scheduled checkpoints (every ``checkpoint_every`` calls) and the run's last call
(``total_env_steps`` or ``time_limit_s`` reached) are scored, before their checkpoint is saved
(a crash in between re-trains and re-scores the same call: the same score, kept again). A run
stopped otherwise (a signal, a crash, a non-finite loss) is not scored where it stopped, so
its resume keeps what the uninterrupted run keeps; a finished run resumed with a larger
``total_env_steps`` has had its last call scored as well. The scoring's seconds are logged
(``validation_seconds``) and counted in the run's wall time.

``npigym eval RUN --checkpoint best`` and ``npigym play RUN --checkpoint best`` load it
(:func:`load_best`; ``npigym.experiments.evaluate.load_run(path, best=True)``).
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from npigym.experiments import run_dir as rd
from npigym.experiments.config import TrainConfig

BEST = "best"
BEST_PARAMS = "params.npz"
BEST_JSON = "best.json"
# The validation set's reset key (final evaluations use PRNGKey(10_000 + size [+ seed])).
VALIDATION_KEY = 0x7A11D


def best_dir(run_dir: str) -> str:
    return os.path.join(run_dir, BEST)


def has_best(run_dir: str) -> bool:
    return os.path.exists(os.path.join(best_dir(run_dir), BEST_PARAMS))


def save_best(run_dir: str, params: Any, record: Dict[str, Any]) -> None:
    """Write the kept params (a seed-stacked pytree) and their record, atomically."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(params)]
    record = {**record, "digest": rd.tree_digest(leaves)}
    buffer = io.BytesIO()
    np.savez(buffer, __record__=np.asarray(json.dumps(record)),
             **{f"leaf_{i}": x for i, x in enumerate(leaves)})
    os.makedirs(best_dir(run_dir), exist_ok=True)
    rd.atomic_write(os.path.join(best_dir(run_dir), BEST_PARAMS), buffer.getvalue())
    rd.atomic_write(os.path.join(best_dir(run_dir), BEST_JSON), json.dumps(record, indent=1))


def load_best(run_dir: str, abstract_params: Any) -> Tuple[Any, Dict[str, Any]]:
    """``(params, record)`` of the run's best checkpoint, the params shaped like
    ``abstract_params`` (seed-stacked, e.g. ``jax.eval_shape(init).params``).

    Raises:
        CheckpointError: no best checkpoint, or one that does not match (damaged, other run).
    """
    path = os.path.join(best_dir(run_dir), BEST_PARAMS)
    if not os.path.exists(path):
        raise rd.CheckpointError(f"no best checkpoint in {run_dir} (train with keep_best=true)")
    try:
        with np.load(path) as data:
            record = json.loads(str(data["__record__"]))
            leaves = [data[f"leaf_{i}"] for i in range(len(data.files) - 1)]
    except Exception as e:  # a torn or foreign file
        raise rd.CheckpointError(f"best checkpoint {path} is unreadable ({type(e).__name__})") \
            from None
    wanted, treedef = jax.tree.flatten(abstract_params)
    if len(leaves) != len(wanted) or any(x.shape != w.shape or x.dtype != w.dtype
                                         for x, w in zip(leaves, wanted)):
        raise rd.CheckpointError(f"best checkpoint {path} does not fit this run's network")
    if rd.tree_digest(leaves) != record.get("digest"):
        raise rd.CheckpointError(f"best checkpoint {path} does not match its digest (corrupted)")
    return jax.tree.unflatten(treedef, leaves), record


# Compiled validation scorers by what they evaluate (env, network, validation set).
_SCORERS: Dict[str, Any] = {}


class BestKeeper:
    """Scores every seed's params on the validation set and keeps the best (module docstring).

    Args:
        config: the run's config (``keep_best``, ``best_size``, ``best_episodes``).
        run_dir: the run directory.
        abstract_params: the seed-stacked params' shapes (restore target).
        resume: continue the kept record and params of ``run_dir`` (if any).
    """

    def __init__(self, config: TrainConfig, run_dir: str, abstract_params: Any,
                 resume: bool = False):
        from npigym.agents.networks import make_network
        from npigym.experiments.evaluate import make_evaluator
        from npigym.experiments.factory import make_env

        self.config, self.run_dir = config, run_dir
        cache_key = repr((config.env, config.env_kwargs, config.skills, config.network,
                          config.best_size, config.best_episodes))
        if cache_key not in _SCORERS:  # a resume in the same process reuses the compiled one
            env = make_env(config, size=config.best_size, whole_task=True)
            network = make_network(env, config.network)
            evaluate = make_evaluator(env, network, config.best_episodes, greedy=True)
            key = jax.random.PRNGKey(VALIDATION_KEY)

            def score(params: Any) -> Tuple[jax.Array, jax.Array]:
                out = evaluate(params, key)
                return (jnp.mean(out["success"].astype(jnp.float32)),
                        jnp.mean(out["ret"].astype(jnp.float32)))

            _SCORERS[cache_key] = jax.jit(jax.vmap(score))
        self._score = _SCORERS[cache_key]
        self.params: Optional[Any] = None
        self.seeds: List[Optional[Dict[str, Any]]] = [None] * config.num_seeds
        if resume and has_best(run_dir):
            params, record = load_best(run_dir, abstract_params)
            if (record.get("size") != config.best_size
                    or record.get("episodes") != config.best_episodes):
                raise rd.CheckpointError(f"best checkpoint of {run_dir} was kept at another "
                                         "validation size or episode count")
            self.params, self.seeds = params, list(record["seeds"])

    def consider(self, calls: int, env_steps: float, params: Any) -> Dict[str, Any]:
        """Score the seed-stacked ``params`` of call ``calls``; keep (and save) those at least
        as good as their seed's best. Returns the scores for the call's record."""
        start = time.perf_counter()
        success, ret = (np.asarray(x, np.float64) for x in jax.device_get(self._score(params)))
        improved = np.array([s is None or float(success[i]) >= s["success"]
                             for i, s in enumerate(self.seeds)])
        if improved.any():
            host = jax.device_get(params)
            if self.params is None:
                self.params = host
            else:
                self.params = jax.tree.map(
                    lambda new, old: np.where(improved.reshape((-1,) + (1,) * (new.ndim - 1)),
                                              new, old), host, self.params)
            for i in np.flatnonzero(improved):
                self.seeds[i] = {"seed": self.config.seed + int(i), "call": int(calls),
                                 "env_steps": float(env_steps), "success": float(success[i]),
                                 "return": float(ret[i])}
            save_best(self.run_dir, self.params, {
                "size": self.config.best_size, "episodes": self.config.best_episodes,
                "seeds": self.seeds})
        return {"validation_seconds": round(time.perf_counter() - start, 3),
                "validation_success": float(np.mean(success)),
                "validation_success_per_seed": [float(x) for x in success],
                "best_validation_success_per_seed": [s["success"] for s in self.seeds]}
