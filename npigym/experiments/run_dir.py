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
```
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict, Optional, Tuple

import jax

CONFIG = "config.yaml"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"
PROGRESS = "progress.json"
CURVES = "learning_curves.png"
EVAL_JSON = "eval.json"
EVAL_MD = "eval.md"


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


class Checkpointer:
    """Orbax checkpoints of the training state, plus host counters in ``progress.json``.

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
        self.manager.save(step, args=self._ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()
        with open(os.path.join(self.run_dir, PROGRESS), "w") as f:
            json.dump({"checkpoint": step, **progress}, f, indent=1)

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def restore(self, abstract_state: Any, step: Optional[int] = None
                ) -> Tuple[Any, Dict[str, Any]]:
        """The state saved at ``step`` (default: the latest) shaped like ``abstract_state``
        (e.g. ``jax.eval_shape`` of the init function), and the saved progress counters."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {os.path.join(self.run_dir, CHECKPOINTS)}")
        state = self.manager.restore(step, args=self._ocp.args.StandardRestore(abstract_state))
        progress: Dict[str, Any] = {}
        path = os.path.join(self.run_dir, PROGRESS)
        if os.path.exists(path):
            with open(path) as f:
                progress = json.load(f)
            if progress.get("checkpoint") != step:  # progress of a later, unfinished save
                progress = {}
        return state, progress

    def close(self) -> None:
        self.manager.close()


def abstract(tree: Any) -> Any:
    """Shapes and dtypes of ``tree`` (a restore target)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
