"""The NPI model in haiku (Reed & de Freitas, ICLR 2016, section 3).

One step of the model, as in the paper::

    s_t = f_enc(e_t, a_t)                       task encoder (one per task)
    x_t = MLP_relu([s_t, M_prog[i]])            the program's embedding joins the state
    h_t = LSTM(x_t, h_{t-1})                    the task-agnostic core (2 x 256 in the paper)
    r_t = f_end(h_t)                            end-of-program logit
    k_t = f_prog(h_t);  logits = M_key . k_t    the next program by key matching
    a_{t+1} = f_arg(h_t)                        three argument heads

``M_key`` (N x K) and ``M_prog`` (N x P) are the key-value program memory: row ``n`` is
program ``table.names[n]``, and a new program is a new row (:func:`extend_params`). The rows
are the union of the tasks' libraries by name, so one core and one memory serve Addition,
Sorting and Canonicalize together; each task has its own encoder.

The encoder does not depend on the recurrent state, so during training (teacher forcing) it
runs on every token of a batch at once; only the LSTM runs inside ``lax.scan``. That keeps the
image CNN's gradient at the top level of the jitted update, where XLA:CPU computes it fast
(inside a scan it is ~16x slower), so the CNN is plain ``hk.Conv2D``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from jumanji import specs

from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import NUM_ARGS, RETURN, RETURN_ID

# Logit of a program outside the task's library: finite, so log-softmax stays finite, and far
# below any real logit, so its probability is exactly 0 in float32.
MASKED_LOGIT = -1e9

Params = hk.Params
CoreState = Any  # a tuple of hk.LSTMState, one per LSTM layer


@dataclasses.dataclass(frozen=True)
class NPIConfig:
    """Sizes of the NPI network. The paper fixes only the core (2 x 256 LSTM); the rest are
    ours. The defaults are small, for the CPU.

    Attributes:
        state_size: D, the encoder's output ``s_t``.
        encoder_layers: hidden widths of the encoder's MLP (before the D-wide output).
        conv_channels: CNN channels for image observations (Canonicalize), one 3x3 stride-2
            convolution per entry (the paper: three stride-2 conv + pool stages).
        program_size: P, width of the program embeddings ``M_prog``.
        key_size: K, width of the program keys ``M_key``.
        fuse_layers: the 2-layer ReLU MLP on ``[s_t, M_prog[i]]`` before the LSTM.
        core_sizes: LSTM layer sizes (the paper: (256, 256)).
    """

    state_size: int = 64
    encoder_layers: Tuple[int, ...] = (64,)
    conv_channels: Tuple[int, ...] = (16, 32, 32)
    program_size: int = 32
    key_size: int = 16
    fuse_layers: Tuple[int, ...] = (128, 128)
    core_sizes: Tuple[int, ...] = (128,)

    def __post_init__(self) -> None:
        sizes = (self.state_size, self.program_size, self.key_size, *self.encoder_layers,
                 *self.conv_channels, *self.fuse_layers, *self.core_sizes)
        if not self.core_sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"NPIConfig sizes must be positive ints and core_sizes non-empty, "
                             f"got {self}")


# ----------------------------------------------------------------------------------------------
# What the model knows of the tasks: their local views and program libraries, as plain data.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LeafLayout:
    """One array of a task's local view.

    Attributes:
        path: its field name in the local view (``"image"``), ``""`` when the view is one array.
        kind: ``"categorical"`` (one-hot encoded), ``"image"`` (CNN) or ``"float"`` (as is).
        shape: the array's shape.
        num_values: for categorical leaves, values per element (flattened).
    """

    path: str
    kind: str
    shape: Tuple[int, ...]
    num_values: Tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class TaskLayout:
    """A task as the model sees it: its encoder's input and its program library.

    Attributes:
        name: the task (and its encoder's) name, e.g. ``"addition"``; envs of one task family
            (Sorting-v0 and Max-v0) share it.
        programs: the env library's program names, by env program id (RETURN first).
        num_args: arguments each of those programs takes.
        arg_sizes: values of each argument slot (the library's ``arg_num_values``).
        arg_valid: ``[program][slot][value]`` which argument values each program allows (the
            library's ``arg_valid``); inference picks arguments among these.
        local: the local view's arrays.
    """

    name: str
    programs: Tuple[str, ...]
    num_args: Tuple[int, ...]
    arg_sizes: Tuple[int, ...]
    arg_valid: Tuple[Tuple[Tuple[bool, ...], ...], ...]
    local: Tuple[LeafLayout, ...]

    def to_json(self) -> Dict[str, Any]:
        """A JSON-ready dict (``npi.json`` of a run directory)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "TaskLayout":
        """The layout saved by :meth:`to_json`."""
        def tup(x):
            return tuple(tup(v) for v in x) if isinstance(x, (list, tuple)) else x

        return TaskLayout(
            name=d["name"], programs=tup(d["programs"]), num_args=tup(d["num_args"]),
            arg_sizes=tup(d["arg_sizes"]), arg_valid=tup(d["arg_valid"]),
            local=tuple(LeafLayout(leaf["path"], leaf["kind"], tup(leaf["shape"]),
                                   tup(leaf["num_values"])) for leaf in d["local"]))


def task_name(env: ProgramEnv) -> str:
    """The task family of an env: its class right below ``ProgramEnv`` (``Max`` -> ``sorting``),
    lower-cased. Envs of one family share an encoder."""
    for cls in type(env).__mro__:
        if ProgramEnv in cls.__bases__:
            return cls.__name__.lower()
    return type(env).__name__.lower()


def _leaf_layouts(spec: Any, path: str = "") -> List[LeafLayout]:
    if isinstance(spec, specs.MultiDiscreteArray):
        values = np.broadcast_to(np.asarray(spec.num_values), spec.shape).reshape(-1)
        return [LeafLayout(path, "categorical", tuple(spec.shape), tuple(int(v) for v in values))]
    if isinstance(spec, specs.DiscreteArray):
        return [LeafLayout(path, "categorical", (), (int(spec.num_values),))]
    if isinstance(spec, specs.Array):
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
            if not isinstance(spec, specs.BoundedArray):
                raise ValueError(f"local view leaf {path!r}: unbounded integers cannot be "
                                 "one-hot encoded")
            high = int(np.max(np.asarray(spec.maximum)))
            return [LeafLayout(path, "categorical", tuple(spec.shape),
                               (high + 1,) * int(np.prod(spec.shape, dtype=int)))]
        return [LeafLayout(path, "image" if len(spec.shape) == 2 else "float",
                           tuple(spec.shape))]
    if isinstance(spec, specs.Spec):
        out: List[LeafLayout] = []
        # jumanji's Spec keeps its children in ``_specs`` and has no public accessor.
        for name, child in sorted(spec._specs.items()):
            if child is not None:
                out += _leaf_layouts(child, f"{path}/{name}" if path else name)
        return out
    raise ValueError(f"unsupported local view spec {spec!r}")


def task_layout(env: ProgramEnv) -> TaskLayout:
    """The :class:`TaskLayout` of a program-machine env."""
    if not isinstance(env, ProgramEnv):
        raise TypeError(f"NPI runs on program-machine envs, not {type(env).__name__}")
    lib = env.library
    return TaskLayout(
        name=task_name(env),
        programs=tuple(lib.names),
        num_args=tuple(int(n) for n in lib.num_args),
        arg_sizes=tuple(int(n) for n in lib.arg_num_values),
        arg_valid=tuple(tuple(tuple(bool(v) for v in slot) for slot in prog)
                        for prog in lib.arg_valid),
        local=tuple(_leaf_layouts(env.local_view_spec)),
    )


@dataclasses.dataclass(frozen=True)
class ProgramTable:
    """The program memory's rows and the tasks that index them.

    Attributes:
        names: program name of each memory row; RETURN is row 0 (the machine's RETURN, which
            the model predicts where a frame ends on an observed condition, see
            ``npigym.agents.npi.data``).
        tasks: the tasks, each with its library (env ids map to rows by name).
    """

    names: Tuple[str, ...]
    tasks: Tuple[TaskLayout, ...]

    @staticmethod
    def build(tasks: Sequence[TaskLayout], base: Optional["ProgramTable"] = None
              ) -> "ProgramTable":
        """The union of the tasks' programs by name, after ``base``'s rows (which keep their
        row numbers: adding a program appends a row).

        Raises:
            ValueError: two tasks of one name with different layouts, or one program name
                with different numbers of arguments.
        """
        names = list(base.names) if base else [RETURN]
        by_name: Dict[str, TaskLayout] = {t.name: t for t in (base.tasks if base else ())}
        for t in tasks:
            if t.programs[RETURN_ID] != RETURN:
                raise ValueError(f"task {t.name}: program 0 must be RETURN")
            old = by_name.get(t.name)
            if old is not None and old.local != t.local:
                raise ValueError(f"task {t.name!r}: local view {t.local} differs from the "
                                 f"model's {old.local}")
            if old is None or len(t.programs) >= len(old.programs):
                by_name[t.name] = t  # Max-v0's library extends Sorting-v0's
            names += [p for p in t.programs if p not in names]
        table = ProgramTable(tuple(names), tuple(by_name.values()))
        arity: Dict[str, int] = {}
        for t in table.tasks:
            for p, n in zip(t.programs, t.num_args):
                if arity.setdefault(p, n) != n:
                    raise ValueError(f"program {p} takes {arity[p]} arguments in one task and "
                                     f"{n} in another")
        return table

    @property
    def num_programs(self) -> int:
        return len(self.names)

    @property
    def arg_sizes(self) -> Tuple[int, ...]:
        """Width of each argument head: the widest slot over the tasks."""
        return tuple(max(t.arg_sizes[s] for t in self.tasks) for s in range(NUM_ARGS))

    def task(self, name: str) -> TaskLayout:
        """The layout of task ``name`` (``KeyError`` if the table has none)."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r} in the model; it knows {[t.name for t in self.tasks]}")

    def rows(self, task: str, programs: Optional[Sequence[str]] = None) -> np.ndarray:
        """Memory row of each env program id of ``task`` (or of the given library names)."""
        programs = self.task(task).programs if programs is None else programs
        return np.asarray([self.names.index(p) for p in programs], np.int32)

    def in_task(self, task: str) -> np.ndarray:
        """(num_programs,) bool: the rows of ``task``'s library."""
        mask = np.zeros(self.num_programs, bool)
        mask[self.rows(task)] = True
        return mask

    def num_args(self) -> np.ndarray:
        """(num_programs,) arguments of each row's program."""
        out = np.zeros(self.num_programs, np.int32)
        for t in self.tasks:
            out[self.rows(t.name)] = t.num_args
        return out

    def to_json(self) -> Dict[str, Any]:
        """A JSON-ready dict (``npi.json`` of a run directory)."""
        return {"names": list(self.names), "tasks": [t.to_json() for t in self.tasks]}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "ProgramTable":
        """The table saved by :meth:`to_json`."""
        return ProgramTable(tuple(d["names"]), tuple(TaskLayout.from_json(t) for t in d["tasks"]))


# ----------------------------------------------------------------------------------------------
# The network.
# ----------------------------------------------------------------------------------------------
class StepOutput(NamedTuple):
    """The model's predictions at one step (leading batch / time axes as the inputs').

    Attributes:
        program_logits: (..., num_programs) ``M_key . k_t``; rows outside the task's library
            are ``MASKED_LOGIT``.
        arg_logits: tuple of 3 arrays (..., arg_sizes[s]), one per argument slot.
        end_logit: (...,) logit of NPI's end probability ``r_t``.
    """

    program_logits: chex.Array
    arg_logits: Tuple[chex.Array, ...]
    end_logit: chex.Array


class Tokens(NamedTuple):
    """Model inputs for a (batch, time) block of decisions.

    Attributes:
        local: ``{path: array}`` the task's local view, leading (B, T).
        args: (B, T, 3) int32, the frame's arguments.
        program: (B, T) int32, the frame's program (memory row).
        first: (B, T) bool, a frame starts here: the LSTM state is zeroed (Algorithm 1).
    """

    local: Dict[str, chex.Array]
    args: chex.Array
    program: chex.Array
    first: chex.Array


def local_dict(local: Any) -> Dict[str, chex.Array]:
    """A local view (array, NamedTuple or nested dict) as ``{path: array}``."""
    if hasattr(local, "_asdict"):
        local = local._asdict()
    if isinstance(local, Mapping):
        out: Dict[str, chex.Array] = {}
        for k, v in local.items():
            if v is None:
                continue
            for path, x in local_dict(v).items():
                out[f"{k}/{path}" if path else k] = x
        return out
    return {"": local}


class TaskEncoder(hk.Module):
    """``f_enc(e_t, a_t)``: a task's local view and the frame's arguments -> ``s_t`` (D wide).

    Categorical leaves (the values under the pointers, edge flags) are one-hot encoded, images
    go through a small CNN, float leaves (Canonicalize's target one-hots) are used as they are;
    an MLP mixes them with the one-hot arguments.
    """

    def __init__(self, layout: TaskLayout, arg_sizes: Sequence[int], config: NPIConfig,
                 name: Optional[str] = None):
        super().__init__(name=name)
        self.layout, self.arg_sizes, self.config = layout, tuple(arg_sizes), config

    def __call__(self, local: Mapping[str, chex.Array], args: chex.Array) -> chex.Array:
        batch = args.shape[:-1]
        features = []
        for leaf in self.layout.local:
            x = local[leaf.path]
            chex.assert_shape(x, (*batch, *leaf.shape))
            if leaf.kind == "categorical":
                flat = x.reshape(*batch, -1).astype(jnp.int32)
                features.append(jax.nn.one_hot(flat, max(leaf.num_values)).reshape(*batch, -1))
            elif leaf.kind == "image":
                image = x.reshape(-1, *leaf.shape, 1).astype(jnp.float32)
                for channels in self.config.conv_channels:
                    image = jax.nn.relu(hk.Conv2D(channels, 3, stride=2)(image))
                features.append(image.reshape(*batch, -1))
            else:
                features.append(x.reshape(*batch, -1).astype(jnp.float32))
        for s, size in enumerate(self.arg_sizes):
            features.append(jax.nn.one_hot(args[..., s], size))
        x = jnp.concatenate(features, axis=-1)
        return hk.nets.MLP([*self.config.encoder_layers, self.config.state_size],
                           activate_final=True)(x)


class NPI(hk.Module):
    """The NPI network: per-task encoders, program memory, LSTM core, heads."""

    def __init__(self, config: NPIConfig, table: ProgramTable, name: str = "npi"):
        super().__init__(name=name)
        self.config, self.table = config, table
        self.encoders = {t.name: TaskEncoder(t, table.arg_sizes, config, name=f"encoder_{t.name}")
                         for t in table.tasks}
        self.core = hk.DeepRNN([hk.LSTM(n, name=f"lstm_{i}")
                                for i, n in enumerate(config.core_sizes)])

    def memory(self) -> Tuple[chex.Array, chex.Array]:
        """``(M_prog, M_key)``, (N, P) and (N, K)."""
        n = self.table.num_programs
        init = hk.initializers.TruncatedNormal(1.0)
        m_prog = hk.get_parameter("m_prog", (n, self.config.program_size), init=init)
        m_key = hk.get_parameter("m_key", (n, self.config.key_size), init=init)
        return m_prog, m_key

    def core_inputs(self, task: str, local: Mapping[str, chex.Array], args: chex.Array,
                    program: chex.Array) -> chex.Array:
        """``MLP_relu([f_enc(e, a), M_prog[i]])``: what the LSTM reads (no recurrent state)."""
        m_prog, _ = self.memory()
        s = self.encoders[task](local, args)
        x = jnp.concatenate([s, m_prog[program]], axis=-1)
        return hk.nets.MLP(self.config.fuse_layers, activate_final=True, name="fuse")(x)

    def heads(self, task: str, h: chex.Array) -> StepOutput:
        _, m_key = self.memory()
        key = hk.Linear(self.config.key_size, name="f_prog")(h)
        logits = key @ m_key.T
        logits = jnp.where(jnp.asarray(self.table.in_task(task)), logits, MASKED_LOGIT)
        arg_logits = tuple(hk.Linear(size, name=f"f_arg_{s}")(h)
                           for s, size in enumerate(self.table.arg_sizes))
        end_logit = hk.Linear(1, name="f_end")(h)[..., 0]
        return StepOutput(logits, arg_logits, end_logit)

    def unroll(self, task: str, tokens: Tokens) -> StepOutput:
        """Teacher-forced predictions for a (B, T) block of frames packed end to end: the
        encoder and the heads run on all tokens at once; the LSTM scans over T, zeroing its
        state where a frame starts."""
        chex.assert_rank([tokens.program, tokens.first], 2)
        x = self.core_inputs(task, tokens.local, tokens.args, tokens.program)
        batch = tokens.program.shape[0]
        core = hk.ResetCore(self.core)
        h, _ = hk.dynamic_unroll(core, (x, tokens.first), zero_state(self.config, (batch,)),
                                 time_major=False)
        return self.heads(task, h)

    def step(self, task: str, local: Mapping[str, chex.Array], args: chex.Array,
             program: chex.Array, state: CoreState) -> Tuple[StepOutput, CoreState]:
        """One decision (any leading batch shape) from the frame's recurrent state."""
        x = self.core_inputs(task, local, args, program)
        h, state = self.core(x, state)
        return self.heads(task, h), state


def zero_state(config: NPIConfig, batch_shape: Tuple[int, ...] = ()) -> CoreState:
    """The LSTM state a frame starts from (Algorithm 1: ``h <- 0`` on entering a program)."""
    return tuple(hk.LSTMState(hidden=jnp.zeros((*batch_shape, n)),
                              cell=jnp.zeros((*batch_shape, n))) for n in config.core_sizes)


class NPIModel(NamedTuple):
    """The transformed network and what it was built from.

    Attributes:
        init: ``init(key) -> params`` (every task's encoder included).
        unroll: ``unroll(params, task, tokens) -> StepOutput`` with (B, T) axes.
        step: ``step(params, task, local, args, program, state) -> (StepOutput, state)``.
        zero_state: ``zero_state(batch_shape=()) -> state``.
        config, table: the sizes and the program table.
    """

    init: Callable[[chex.PRNGKey], Params]
    unroll: Callable[..., StepOutput]
    step: Callable[..., Tuple[StepOutput, CoreState]]
    zero_state: Callable[..., CoreState]
    config: NPIConfig
    table: ProgramTable


def dummy_tokens(layout: TaskLayout, batch: int = 1, time: int = 1) -> Tokens:
    """Zero inputs of the right shapes (for ``init`` and shape checks)."""
    local = {leaf.path: jnp.zeros((batch, time, *leaf.shape),
                                  jnp.int32 if leaf.kind == "categorical" else jnp.float32)
             for leaf in layout.local}
    return Tokens(local, jnp.zeros((batch, time, NUM_ARGS), jnp.int32),
                  jnp.zeros((batch, time), jnp.int32), jnp.ones((batch, time), bool))


@functools.lru_cache(maxsize=32)
def make_model(config: NPIConfig, table: ProgramTable) -> NPIModel:
    """The NPI network for ``table``'s tasks (``hk.multi_transform``: one set of parameters,
    two entry points). One object per ``(config, table)``: its functions are the keys of
    jax's compilation caches, so loading a run twice compiles once."""

    def template():
        npi = NPI(config, table)

        def init_all():
            # One step per task creates every parameter (an unroll would too, but its scan
            # makes the jitted init several times slower to compile).
            for t in table.tasks:
                tokens = jax.tree.map(lambda x: x[0, 0], dummy_tokens(t))
                npi.step(t.name, tokens.local, tokens.args, tokens.program,
                         zero_state(config))

        return init_all, (npi.unroll, npi.step)

    transformed = hk.without_apply_rng(hk.multi_transform(template))
    unroll, step = transformed.apply
    return NPIModel(init=transformed.init, unroll=unroll, step=step,
                    zero_state=lambda batch_shape=(): zero_state(config, batch_shape),
                    config=config, table=table)


# ----------------------------------------------------------------------------------------------
# Adding programs: new memory rows on a trained core.
# ----------------------------------------------------------------------------------------------
MEMORY = "npi"  # haiku module holding m_prog and m_key


# hk.initializers.TruncatedNormal(1.0): a normal truncated at 2 std, rescaled to std 1.
_TRUNCATED_STD = 0.87962566103423978


def extend_params(params: Params, old: ProgramTable, model: NPIModel, key: chex.PRNGKey
                  ) -> Params:
    """``params`` of a model over ``old`` carried over to ``model`` (whose table extends it):
    every old module and memory row keeps its values; new program embeddings (and the
    encoders of new tasks) start from the initialiser, new keys at zero. A zero key scores 0
    against every ``k_t``, below what the trained keys score where they are chosen, so the old
    programs keep their choices until training moves the new keys (random keys of norm ~4
    would outscore them at random). Without new modules only the new rows are drawn (no
    jitted init to compile)."""
    shapes = jax.eval_shape(model.init, key)
    new_modules = [m for m in shapes if m not in params]
    fresh = jax.jit(model.init)(key) if new_modules else None
    rows = np.asarray([model.table.names.index(n) for n in old.names])
    out = {}
    for module, leaves in shapes.items():
        out[module] = {}
        for name, shape in leaves.items():
            if module == MEMORY and name in ("m_prog", "m_key"):
                if fresh is not None:
                    value = fresh[module][name]
                else:
                    value = jax.random.truncated_normal(
                        jax.random.fold_in(key, len(name)), -2.0, 2.0, shape.shape,
                        shape.dtype) / _TRUNCATED_STD
                if name == "m_key":
                    value = jnp.zeros_like(value)
                value = value.at[rows].set(params[module][name])
            elif module in params:
                value = params[module][name]
            else:
                value = fresh[module][name]
            out[module][name] = value
    return out


def trainable_mask(params: Params, table: ProgramTable, programs: Optional[Sequence[str]] = None
                   ) -> Params:
    """A 0/1 pytree like ``params``: 1 where the optimiser may change a parameter.

    ``programs=None`` trains everything; a list of names trains only those programs' memory
    rows (NPI section 4.3: a new program learned on a frozen core). Both have the same shapes
    (a (N, 1) column for the memory, scalars elsewhere), so one jitted update serves both.
    """
    rows = np.zeros((table.num_programs, 1), np.float32)
    for name in (table.names if programs is None else programs):
        rows[table.names.index(name)] = 1.0
    rest = 1.0 if programs is None else 0.0
    return {module: {name: (jnp.asarray(rows) if module == MEMORY and name in ("m_prog", "m_key")
                            else jnp.full((), rest, value.dtype))
                     for name, value in leaves.items()}
            for module, leaves in params.items()}
