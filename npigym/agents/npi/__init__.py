"""Neural Programmer-Interpreters (Reed & de Freitas, ICLR 2016) trained on npigym's traces.

- :mod:`~npigym.agents.npi.model`: the network in haiku (task encoders, key-value program
  memory, LSTM core, end / program / argument heads).
- :mod:`~npigym.agents.npi.data`: per-frame call sequences from expert traces, NPI's end bit
  against the machine's RETURN, packing into static blocks.
- :mod:`~npigym.agents.npi.training`: the NLL loss, the jitted update, the adaptive curriculum.
- :mod:`~npigym.agents.npi.interpreter`: the model as the interpreter inside an env (Algorithm
  1, a stack of LSTM states), batched in one ``lax.while_loop``, and as a host policy.

Run directories and the command line are in :mod:`npigym.experiments.npi_runs`.
"""

from npigym.agents.npi.data import TraceInputError, pack, task_frames
from npigym.agents.npi.interpreter import ALPHA, HostPolicy, make_runner, task_tables
from npigym.agents.npi.model import (
    NPIConfig,
    NPIModel,
    ProgramTable,
    TaskLayout,
    extend_params,
    make_model,
    task_layout,
    trainable_mask,
)
from npigym.agents.npi.training import TrainConfig, train

__all__ = [
    "ALPHA",
    "HostPolicy",
    "NPIConfig",
    "NPIModel",
    "ProgramTable",
    "TaskLayout",
    "TraceInputError",
    "TrainConfig",
    "extend_params",
    "make_model",
    "make_runner",
    "pack",
    "task_frames",
    "task_layout",
    "task_tables",
    "train",
    "trainable_mask",
]
