"""Run directories: where a training run keeps its config, metrics, checkpoints and results.

```
runs/Addition-v0-a2c-20261122-051500/
  config.yaml            the resolved config (``npigym train --config`` takes it back)
  metrics.jsonl          one record per host call (episode return, success, losses, ...)
  metrics.csv            the same, scalar columns only
  tb/                    TensorBoard event files
  checkpoints/<call>/    orbax checkpoints of the whole training state (all seeds)
  progress.json          host-side counters of the last checkpoint (calls, wall time)
  learning_curves.png    return and success against env steps
  eval.json, eval.md     the length-generalisation table
  best/                  with keep_best: each seed's best params by validation (best.py)
  eval_best.json, .md    the length-generalisation table of best/
```

Crash safety. A checkpoint carries its own progress record and a SHA-256 digest of the saved
state in orbax's step metadata, so the two are committed together (orbax finalises a step
directory by renaming it; a run killed mid-save leaves only a temporary directory that orbax
ignores). ``progress.json`` is a convenience copy, written atomically after the save; a
resume reads the checkpoint's own record. :meth:`Checkpointer.restore` checks the digest and
that every floating-point leaf is finite, and falls back to the newest intact checkpoint
(with a warning) when the latest one is unreadable; when none is intact it raises
:class:`CheckpointError` with one line per checkpoint tried.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import jax
import numpy as np

CONFIG = "config.yaml"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"
PROGRESS = "progress.json"
CURVES = "learning_curves.png"
EVAL_JSON = "eval.json"
EVAL_MD = "eval.md"
EVAL_BEST_JSON = "eval_best.json"
EVAL_BEST_MD = "eval_best.md"


class CheckpointError(ValueError):
    """No intact checkpoint to restore (missing, truncated, corrupted or non-finite)."""


def new_run_dir(root: str, env_id: str, agent: str) -> str:
    """A fresh directory ``root/<env>-<agent>-<timestamp>`` (suffixed if it exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, f"{env_id}-{agent}-{stamp}")
    path, i = base, 1
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    os.makedirs(path)
    return path


def is_run_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, CONFIG))


def atomic_write(path: str, text: Union[str, bytes]) -> None:
    """Write ``text`` (or bytes) to ``path`` so that a reader (or a crash) sees the old file or
    the new one, never a torn one: a temporary file in the same directory, fsync,
    ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _host_leaves(tree: Any) -> List[np.ndarray]:
    def host(x: Any) -> np.ndarray:
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(jax.device_get(x))

    return [host(x) for x in jax.tree.leaves(tree)]


def tree_digest(tree: Any) -> str:
    """SHA-256 of a pytree's leaves (dtype, shape and bytes, in tree order)."""
    h = hashlib.sha256()
    for a in _host_leaves(tree):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def non_finite_leaves(tree: Any) -> List[str]:
    """Paths of the floating-point leaves of ``tree`` that hold a NaN or an infinity."""
    bad = []
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        dtype = getattr(x, "dtype", None)
        if dtype is not None and jax.dtypes.issubdtype(dtype, np.inexact) \
                and not np.all(np.isfinite(np.asarray(jax.device_get(x)))):
            bad.append(jax.tree_util.keystr(path))
    return bad


@contextlib.contextmanager
def _quiet_item_warnings() -> Iterator[None]:
    """Drop orbax's 'Item "default" was found in the checkpoint, but could not be restored'
    warning, which reading a step's metadata (not its items) logs on every restore."""
    quiet = logging.Filter()
    quiet.filter = lambda record: "could not be restored" not in record.getMessage()
    logging.getLogger("absl").addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger("absl").removeFilter(quiet)


class Checkpointer:
    """Orbax checkpoints of the training state, each with its progress record and digest.

    Args:
        run_dir: the run directory.
        max_to_keep: checkpoints kept (older ones are deleted).
    """

    def __init__(self, run_dir: str, max_to_keep: int = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.run_dir = run_dir
        # Synchronous saves: a call's checkpoint is complete when save returns, so a run
        # killed right after still resumes from it.
        self.manager = ocp.CheckpointManager(
            os.path.abspath(os.path.join(run_dir, CHECKPOINTS)),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                 enable_async_checkpointing=False))

    def save(self, step: int, state: Any, progress: Dict[str, Any]) -> None:
        """Save ``state`` as checkpoint ``step`` with ``progress`` in its own metadata."""
        record = {"checkpoint": int(step), **progress}
        self.manager.save(step, args=self._ocp.args.StandardSave(state), force=True,
                          custom_metadata={"progress": record, "digest": tree_digest(state)})
        self.manager.wait_until_finished()
        atomic_write(os.path.join(self.run_dir, PROGRESS), json.dumps(record, indent=1))

    def latest_step(self) -> Optional[int]:
        """The newest checkpoint's step (its call), or None."""
        return self.manager.latest_step()

    def _progress(self, step: int, metadata: Dict[str, Any]) -> Dict[str, Any]:
        if "progress" in metadata:
            return dict(metadata["progress"])
        # A checkpoint of an older npigym: the separate progress.json, if it is this step's.
        try:
            with open(os.path.join(self.run_dir, PROGRESS)) as f:
                progress = json.load(f)
        except (OSError, ValueError):
            progress = {}
        if not isinstance(progress, dict) or progress.get("checkpoint") != step:
            progress = {}
        return {**progress, "checkpoint": step}

    def _restore_one(self, abstract_state: Any, step: int) -> Tuple[Any, Dict[str, Any]]:
        try:
            with _quiet_item_warnings():
                metadata = dict(self.manager.metadata(step).custom_metadata or {})
        except Exception:  # an unreadable _CHECKPOINT_METADATA: the data may still be intact
            metadata = {}
        state = self.manager.restore(step, args=self._ocp.args.StandardRestore(abstract_state))
        digest = metadata.get("digest")
        if digest is not None and tree_digest(state) != digest:
            raise CheckpointError("its contents do not match the digest saved with it "
                                  "(corrupted)")
        bad = non_finite_leaves(state)
        if bad:
            raise CheckpointError(f"non-finite values in {', '.join(bad[:3])}"
                                  + (f" and {len(bad) - 3} more" if len(bad) > 3 else ""))
        return state, self._progress(step, metadata)

    def restore(self, abstract_state: Any, step: Optional[int] = None, warn: Any = None
                ) -> Tuple[Any, Dict[str, Any]]:
        """The state saved at ``step`` (default: the newest intact one) shaped like
        ``abstract_state`` (e.g. ``jax.eval_shape`` of the init function), and its progress
        record (``{"checkpoint": step, ...}``: the counters saved with it).

        Without ``step``, an unreadable, corrupted or non-finite checkpoint is skipped for the
        next older one, with a warning to ``warn`` (default stderr).

        Raises:
            CheckpointError: no intact checkpoint (the message says why for each one tried).
        """
        folder = os.path.join(self.run_dir, CHECKPOINTS)
        self.manager.reload()
        steps = sorted(self.manager.all_steps(), reverse=True) if step is None else [step]
        if not steps:
            raise CheckpointError(f"no checkpoint in {folder}")
        failures = []
        for s in steps:
            try:
                state, progress = self._restore_one(abstract_state, s)
            except CheckpointError as e:
                failures.append(f"checkpoint {s}: {e}")
            except Exception as e:  # orbax / tensorstore / JSON errors of a damaged file
                first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
                failures.append(f"checkpoint {s}: unreadable ({type(e).__name__}: {first})")
            else:
                if failures:
                    print(f"warning: {'; '.join(failures)}; using checkpoint {s}",
                          file=warn or sys.stderr)
                return state, progress
        raise CheckpointError(f"no intact checkpoint in {folder}: {'; '.join(failures)}")

    def close(self) -> None:
        """Wait for pending saves and release the checkpoint manager."""
        self.manager.close()


def abstract(tree: Any) -> Any:
    """Shapes and dtypes of ``tree`` (a restore target)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
