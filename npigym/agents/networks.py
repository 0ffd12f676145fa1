"""NPI-shaped actor-critic networks in haiku, built from an environment's specs.

The network reads one observation per environment and a recurrent state, and returns features
for the heads::

    observation ──► task encoder ─┐
      program, args ─► program    ├─► recurrent core ─► head MLP ─► policy head (program, args)
      depth           memory     ─┘   (one state per      ▲         inner value, outer value
                                       call-stack frame)  └── skip: encoder features

- **Task encoder** (:class:`ObservationEncoder`): built from the observation spec, leaf by leaf.
  Categorical leaves (``MultiDiscreteArray``, ``DiscreteArray``, small integer or bool arrays)
  are one-hot encoded; float images (rank 3 ``(H, W, C)``, or rank 2 ``(H, W)`` as one channel)
  go through a small CNN (:class:`PatchConv2D`); other leaves are flattened (wide integer
  ranges scaled to [0, 1]). An MLP mixes them. The same code encodes Addition's local view,
  Canonicalize's image and Snake's grid.
- **Program memory**: learned embeddings of the current program and of each argument slot's
  value, and a one-hot of the call depth (NPI's program memory ``M_prog``).
- **Recurrent core** (:class:`FrameStackCore`): an LSTM or GRU (or none). As in NPI's ``RUN``
  (Reed & de Freitas 2016, Algorithm 1) each call-stack frame has its own recurrent state: a
  call starts the callee from a zero state, and a RETURN resumes the caller's saved state; every
  state is zeroed at the start of an episode. Plain Jumanji envs have one frame, so this is an
  ordinary recurrent state reset at episode start.
- **Heads**: for program-machine envs (:class:`ProgramPolicyHead`) a categorical over programs
  masked by ``action_mask``, then each argument slot *autoregressively* (conditioned on the
  chosen program and the earlier arguments) with the values the program does not allow masked
  out through ``library.arg_valid``; the log-probability of an action counts the program and the
  arguments that program uses. For Jumanji's ``DiscreteArray`` actions a masked categorical; for
  other ``MultiDiscreteArray`` actions independent categoricals. Two value heads: the inner one
  (trained with the agent's own discount) and an *outer* one (trained at a fixed outer discount;
  the meta-gradient agents use it for an unbiased outer advantage, Bonnet et al. 2022).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from jumanji import specs

from npigym.envs.machine.library import NUM_ARGS

# Logit of a masked choice: finite (so masked log-probabilities and 0 * log 0 stay finite in
# the entropy) and far enough below any real logit that its probability is exactly 0 in float32.
MASKED_LOGIT = -1e9
# Integer leaves with at most this many values are one-hot encoded, wider ones scaled to [0, 1].
MAX_ONE_HOT = 64


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the actor-critic network.

    Attributes:
        encoder_layers: MLP widths of the task encoder (after one-hot / CNN features).
        conv_channels: output channels of each CNN layer, for image leaves. Empty (with
            empty ``conv_kernels`` and ``conv_strides``): no CNN, the image is flattened into
            the encoder MLP (an MLP torso). For small boards (Snake 6x6: 180 inputs) that is
            2-3x faster than the conv torso in a meta-gradient update on XLA:CPU
            (``benchmarks/train_throughput.py``).
        conv_kernels: kernel size of each CNN layer.
        conv_strides: stride of each CNN layer.
        embed_size: size of the program and argument embeddings.
        core: ``"lstm"``, ``"gru"`` or ``"none"`` (feed-forward).
        core_size: hidden size of the recurrent core.
        head_layers: MLP widths between the core (plus the encoder's skip) and the heads.
        frame_stack: one recurrent state per call-stack frame (NPI); ``False`` keeps one state
            for the whole episode.
        frame_step_features: when > 0, the core also keeps, per frame, how many decisions the
            frame has made, and feeds it (one-hot, saturating at this many values) to the core
            and the heads. The agent counts its own decisions (no env information): it spares
            the LSTM from counting, the job recursion removes in Cai et al. 2017. 0: off.
        previous_action: also feed each frame its own previous decision (the program it
            called last, one-hot; "none" at the frame's start), as R2D2-style agents feed the
            last action. A frame that cycles through calls whose effects look alike (Sorting's
            BUBBLE, RESET, PTR 3 RIGHT) then knows where it is without counting.
        previous_invalid: also feed the acting frame whether the env's previous step was an
            invalid no-op (the env's ``extras["invalid_action"]``; False in envs that do not
            report it). Only the frame that made the invalid call can see it: the call
            changed nothing, the depth included. Why: a failed call may leave the frame's
            input exactly as a successful one does. Sorting's ``PTR 3 RIGHT`` onto an
            unsettled cell changes no flag in the local view, so with the same view and the
            same previous call a greedy BUBBLESORT cannot tell a refused move from a made
            one, and retries the refused one until the step limit.
        ordinal_encoding: also encode each categorical observation leaf as a thermometer
            (``x > k`` for every ``k``) next to its one-hot. From one-hot codes alone the
            encoder must learn the order of the values from reward; with the thermometer,
            neighbouring values share features and the sum of a column's digits in Addition
            (which decides the digit ADD1 writes) is one linear unit with equal weights.
            Leaves whose codes are unordered lose nothing: the one-hot is still there.
        critic_layers: empty: the value heads read the policy's features (one shared torso).
            Non-empty: the critic is a separate feed-forward network on the observation (its
            own encoder, then an MLP of these widths), and the outer value of the
            meta-gradient agents another one of the same shape, as in Bonnet et al.'s Snake
            agent (separate actor, critic and outer critic). Why it matters there: with a
            shared torso the inner value loss, whose targets depend on the learned discount,
            also moves the policy's features, so the meta-gradient sees a discount-to-policy
            path the paper's agent does not have. Needs ``core="none"`` (the critic has no
            memory).
    """

    encoder_layers: Tuple[int, ...] = (64,)
    conv_channels: Tuple[int, ...] = (32, 32)
    conv_kernels: Tuple[int, ...] = (2, 2)
    conv_strides: Tuple[int, ...] = (2, 1)
    embed_size: int = 16
    core: str = "lstm"
    core_size: int = 64
    head_layers: Tuple[int, ...] = (64,)
    frame_stack: bool = True
    frame_step_features: int = 0
    previous_action: bool = False
    previous_invalid: bool = False
    ordinal_encoding: bool = False
    critic_layers: Tuple[int, ...] = ()


# ----------------------------------------------------------------------------------------------
# Task encoder.
# ----------------------------------------------------------------------------------------------
class PatchConv2D(hk.Module):
    """A 2-D convolution written as image patches times a weight matrix (VALID padding).

    Same parameters and result as ``hk.Conv2D(..., padding="VALID")`` (weights ``w`` in HWIO),
    but computed as image patches (one strided slice per kernel offset) followed by a matmul.
    Why: on XLA:CPU the gradient of a convolution inside a ``lax.scan``/``while_loop`` body runs
    about 16x slower than at top level (research notes, ecosystem section 5.2), and the whole
    training loop here is a scan over updates. Slices' gradients are pads and the rest is a
    matmul, whose gradient is fast anywhere. (An earlier version extracted the patches with
    ``lax.conv_general_dilated_patches``, itself a convolution: the meta-gradient update on
    Snake 6x6 ran about 2x slower with it; ``benchmarks/train_throughput.py`` measures both.)
    """

    def __init__(self, channels: int, kernel: int, stride: int, name: Optional[str] = None):
        super().__init__(name=name)
        self.channels, self.kernel, self.stride = channels, kernel, stride

    def __call__(self, x: chex.Array) -> chex.Array:
        chex.assert_rank(x, 4)  # (N, H, W, C)
        in_channels = x.shape[-1]
        fan_in = in_channels * self.kernel * self.kernel
        w = hk.get_parameter("w", (self.kernel, self.kernel, in_channels, self.channels),
                             x.dtype, init=hk.initializers.VarianceScaling(1.0, "fan_avg",
                                                                           "uniform"))
        b = hk.get_parameter("b", (self.channels,), x.dtype, init=jnp.zeros)
        k, s = self.kernel, self.stride
        out_h, out_w = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
        # One strided slice per kernel offset, concatenated on channels: features ordered
        # (kh, kw, in_channel), the HWIO weights' own order. Slices' gradients are pads, cheap
        # anywhere; ``conv_general_dilated_patches`` is itself a convolution, whose input
        # gradient (needed from the second layer on) hits XLA:CPU's slow path inside a loop.
        patches = jnp.concatenate(
            [x[:, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s, :]
             for i in range(k) for j in range(k)], axis=-1)
        return patches @ w.reshape(fan_in, self.channels) + b


def _leaf_kind(spec: specs.Array) -> str:
    """How :class:`ObservationEncoder` encodes a leaf: one-hot, flag, scaled, image or raw."""
    dtype = np.dtype(spec.dtype)
    if dtype == np.bool_:
        return "bool"
    if isinstance(spec, (specs.MultiDiscreteArray, specs.DiscreteArray)) or (
            np.issubdtype(dtype, np.integer) and isinstance(spec, specs.BoundedArray)):
        # Small ranges are categories (digits, cell codes); wide ones are counts (Snake's
        # step_count has 4,000 values), better as one scaled number.
        return "categorical" if _leaf_num_values(spec)[1] <= MAX_ONE_HOT else "scaled"
    if np.issubdtype(dtype, np.integer):
        return "float"
    if len(spec.shape) == 3 or (len(spec.shape) == 2 and min(spec.shape) >= 4):
        return "image"
    return "float"


def _leaf_num_values(spec: specs.Array) -> Tuple[int, int]:
    """(minimum, number of values) of a categorical leaf."""
    if isinstance(spec, specs.DiscreteArray):
        return 0, int(spec.num_values)
    if isinstance(spec, specs.MultiDiscreteArray):
        return 0, int(np.max(np.asarray(spec.num_values)))
    low = int(np.min(np.asarray(spec.minimum)))
    return low, int(np.max(np.asarray(spec.maximum))) - low + 1


def _spec_leaves(spec: Any) -> List[Tuple[str, specs.Array]]:
    """``(path, array spec)`` of every array in a (nested) observation spec."""
    if spec is None:
        return []
    if isinstance(spec, specs.Array):
        return [("", spec)]
    if isinstance(spec, specs.Spec):
        out = []
        for name, child in _children(spec):
            out += [(f"{name}/{path}" if path else name, s) for path, s in _spec_leaves(child)]
        return out
    raise TypeError(f"unsupported observation spec {spec!r}")


def _children(spec: specs.Spec) -> List[Tuple[str, Any]]:
    # jumanji.specs.Spec keeps its children in ``_specs`` and has no public accessor for them.
    return sorted((k, v) for k, v in spec._specs.items() if v is not None)


def _obs_leaves(spec: Any, obs: Any) -> List[chex.Array]:
    """The arrays of ``obs`` in the order of :func:`_spec_leaves`."""
    if spec is None:
        return []
    if isinstance(spec, specs.Array):
        return [obs]
    out = []
    for name, child in _children(spec):
        out += _obs_leaves(child, getattr(obs, name))
    return out


def categorical_features(code: chex.Array, num_values: int, ordinal: bool) -> chex.Array:
    """One-hot of ``code`` in ``[0, num_values)``, then, if ``ordinal``, its thermometer.

    The thermometer is ``code > k`` for ``k = 0 .. num_values - 2``: value ``v`` has ``v`` ones,
    so neighbouring values share all but one feature and sums of values are linear in them.

    Returns:
        float32 ``(*code.shape, num_values)``, or ``(*code.shape, 2 * num_values - 1)``.
    """
    f = jax.nn.one_hot(code, num_values)
    if ordinal:
        above = (code[..., None] > jnp.arange(num_values - 1)).astype(jnp.float32)
        f = jnp.concatenate([f, above], axis=-1)
    return f


class ObservationEncoder(hk.Module):
    """Encodes any observation described by a Jumanji spec into one feature vector.

    Args:
        spec: the observation spec (or the part of it to encode).
        config: network sizes (MLP widths, CNN channels).
        skip: top-level field names to leave out (e.g. ``action_mask``, read by the heads).
    """

    def __init__(self, spec: Any, config: NetworkConfig, skip: Sequence[str] = (),
                 name: Optional[str] = None):
        super().__init__(name=name)
        self.leaves = [(p, s) for p, s in _spec_leaves(spec) if p.split("/")[0] not in skip]
        self.spec, self.config, self.skip = spec, config, tuple(skip)

    def __call__(self, obs: Any, batch_ndim: int = 1) -> chex.Array:
        arrays = [a for (p, _), a in zip(_spec_leaves(self.spec), _obs_leaves(self.spec, obs))
                  if p.split("/")[0] not in self.skip]
        batch_shape = arrays[0].shape[:batch_ndim] if arrays else ()
        features = []
        for (path, spec), x in zip(self.leaves, arrays):
            kind = _leaf_kind(spec)
            flat = x.reshape((-1, *x.shape[batch_ndim:]))  # (N, *leaf shape)
            if kind == "categorical":
                low, n = _leaf_num_values(spec)
                f = categorical_features(flat.astype(jnp.int32) - low, n,
                                         self.config.ordinal_encoding)
                f = f.reshape(flat.shape[0], -1)
            elif kind == "bool":
                f = flat.astype(jnp.float32).reshape(flat.shape[0], -1)
            elif kind == "scaled":
                low = jnp.asarray(spec.minimum, jnp.float32)
                high = jnp.asarray(spec.maximum, jnp.float32)
                f = ((flat - low) / jnp.maximum(high - low, 1.0)).reshape(flat.shape[0], -1)
            elif kind == "image":
                f = self._cnn(flat.astype(jnp.float32), path)
            else:
                f = flat.astype(jnp.float32).reshape(flat.shape[0], -1)
            features.append(f.astype(jnp.float32))
        x = jnp.concatenate(features, axis=-1)
        x = hk.nets.MLP(self.config.encoder_layers, activate_final=True, name="mlp")(x)
        return x.reshape((*batch_shape, -1))

    def _cnn(self, image: chex.Array, path: str) -> chex.Array:
        if image.ndim == 3:  # (N, H, W): one channel
            image = image[..., None]
        cfg = self.config
        name = path.replace("/", "_") or "image"
        for i, (ch, k, s) in enumerate(zip(cfg.conv_channels, cfg.conv_kernels,
                                           cfg.conv_strides)):
            image = jax.nn.relu(PatchConv2D(ch, k, s, name=f"{name}_conv{i}")(image))
        return image.reshape(image.shape[0], -1)


# ----------------------------------------------------------------------------------------------
# Recurrent core with one state per call-stack frame.
# ----------------------------------------------------------------------------------------------
class CoreState(NamedTuple):
    """Recurrent state of :class:`FrameStackCore`.

    Attributes:
        frames: the core's state for each call-stack depth, leaves ``(B, max_depth, ...)``.
        depth: (B,) int32, the depth of the frame that acted last.
    """

    frames: Any
    depth: chex.Array


class FeedForwardCore(hk.RNNCore):
    """The ``core="none"`` option: no memory (a dummy state keeps the interfaces the same)."""

    def __call__(self, inputs: chex.Array, state: chex.Array):
        return inputs, state

    def initial_state(self, batch_size: Optional[int]) -> chex.Array:
        return jnp.zeros((batch_size, 1), jnp.float32)


class FrameStackCore(hk.Module):
    """Runs a recurrent core with one state per call-stack frame, as NPI's ``RUN`` does.

    On a call (the observed depth grew) the callee starts from the core's initial (zero) state;
    on RETURN (depth shrank) the caller resumes from the state it had when it made the call.
    Every frame's state is reset on the first step of an episode. With ``max_depth=1`` this is
    the usual recurrent state reset at episode boundaries. With ``step_features > 0`` each
    frame also counts its decisions (see ``NetworkConfig.frame_step_features``); with
    ``num_actions > 0`` it remembers its previous decision (``NetworkConfig.previous_action``);
    with ``invalid_feature`` the core and heads also see the step's ``invalid`` flag
    (``NetworkConfig.previous_invalid``).
    """

    def __init__(self, core: hk.RNNCore, max_depth: int, step_features: int = 0,
                 num_actions: int = 0, invalid_feature: bool = False,
                 name: Optional[str] = None):
        super().__init__(name=name)
        self.core, self.max_depth, self.step_features = core, max_depth, step_features
        self.num_actions, self.invalid_feature = num_actions, invalid_feature

    def _zero(self, batch_size: int) -> Any:
        # (core state, decisions made, previous decision: num_actions means none yet)
        return (self.core.initial_state(batch_size), jnp.zeros((batch_size,), jnp.int32),
                jnp.full((batch_size,), self.num_actions, jnp.int32))

    def initial_state(self, batch_size: int) -> CoreState:
        """Zero states for every call-stack frame of ``batch_size`` envs."""
        one = self._zero(batch_size)
        frames = jax.tree.map(lambda s: jnp.repeat(s[:, None], self.max_depth, axis=1), one)
        return CoreState(frames, jnp.zeros((batch_size,), jnp.int32))

    def __call__(self, x: chex.Array, depth: chex.Array, first: chex.Array, state: CoreState,
                 invalid: Optional[chex.Array] = None) -> Tuple[chex.Array, CoreState]:
        """One decision per env. ``invalid`` (B,): the step that led to this input was an
        invalid no-op (ignored where ``first``; None: no step was)."""
        chex.assert_rank([x, depth, first], [2, 1, 1])
        batch = x.shape[0]
        depth = jnp.clip(depth, 0, self.max_depth - 1)
        zero = self._zero(batch)
        slot = jax.nn.one_hot(depth, self.max_depth, dtype=bool)  # (B, D)
        # Scatter-free selects: the stack is a few frames deep, so a one-hot where is cheap.
        frames = jax.tree.map(
            lambda f, z: jnp.where(_expand(first, f.ndim), z[:, None], f), state.frames, zero)
        fresh = first | (depth > state.depth)

        def pick(f: chex.Array, z: chex.Array) -> chex.Array:
            current = jnp.sum(jnp.where(_expand(slot, f.ndim), f, 0), axis=1)
            return jnp.where(_expand(fresh, z.ndim), z, current)

        core_state, count, previous = jax.tree.map(pick, frames, zero)
        extra = []
        if self.step_features:
            extra.append(jax.nn.one_hot(jnp.minimum(count, self.step_features - 1),
                                        self.step_features))
        if self.num_actions:
            extra.append(jax.nn.one_hot(previous, self.num_actions + 1))
        if self.invalid_feature:
            # An invalid call is a no-op, so the frame acting now is the one that made it:
            # the flag needs no per-frame memory. An episode's first input follows no step.
            failed = jnp.zeros_like(first) if invalid is None else invalid & ~first
            extra.append(failed.astype(x.dtype)[:, None])
        x = jnp.concatenate([x, *extra], axis=-1)
        out, core_state = self.core(x, core_state)
        out = jnp.concatenate([out, *extra], axis=-1)
        new = (core_state, count + 1, previous)
        frames = jax.tree.map(lambda f, n: jnp.where(_expand(slot, f.ndim), n[:, None], f),
                              frames, new)
        return out, CoreState(frames, depth)


    def record(self, state: CoreState, action_id: chex.Array) -> CoreState:
        """Remember ``action_id`` as the previous decision of the frame that just acted
        (replacing what was recorded for that decision, if anything was)."""
        if not self.num_actions:
            return state
        slot = jax.nn.one_hot(state.depth, self.max_depth, dtype=bool)
        core_state, count, previous = state.frames
        previous = jnp.where(slot, action_id[:, None].astype(jnp.int32), previous)
        return state._replace(frames=(core_state, count, previous))


def _expand(mask: chex.Array, ndim: int) -> chex.Array:
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


# ----------------------------------------------------------------------------------------------
# Policy heads.
# ----------------------------------------------------------------------------------------------
class PolicyOutput(NamedTuple):
    """What a policy head returns for a batch of decisions.

    Attributes:
        action: the action taken (sampled, greedy, or the one given to evaluate).
        log_prob: log-probability of ``action`` under the (masked) policy.
        entropy: entropy of the masked policy: the program distribution's plus, for program
            envs, the argument distributions the chosen program uses (an unbiased estimate of
            the joint entropy when the program is sampled from the policy).
        uniform_kl: ``KL(uniform || policy)`` summed over the same distributions, the uniform
            being over each one's valid entries (:func:`categorical_uniform_kl`).
    """

    action: chex.Array
    log_prob: chex.Array
    entropy: chex.Array
    uniform_kl: Any = 0.0


def masked_logits(logits: chex.Array, mask: chex.Array) -> chex.Array:
    """``logits`` with the entries where ``mask`` is False pushed to :data:`MASKED_LOGIT`."""
    return jnp.where(mask, logits, MASKED_LOGIT)


def categorical_log_prob(logits: chex.Array, x: chex.Array) -> chex.Array:
    """log softmax(logits)[x] (batched over leading dims)."""
    logp = jax.nn.log_softmax(logits)
    return jnp.take_along_axis(logp, x[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits: chex.Array) -> chex.Array:
    """Entropy of softmax(logits); masked entries contribute exactly 0."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def categorical_uniform_kl(logits: chex.Array, valid: Optional[chex.Array] = None
                           ) -> chex.Array:
    """``KL(U || softmax(logits))`` for ``U`` uniform over the ``valid`` entries (all if None).

    ``= -log n - mean over the valid entries of log p``. As a penalty it keeps every valid
    action reachable. The entropy bonus does not: its gradient on a logit is
    ``-p (log p + H)``, which vanishes with ``p``, so once generalisation from other states has
    pushed the right action's probability to 1e-10 nothing brings it back. This one's is
    ``p - 1/n``, a pull of ``1/n`` however small ``p`` got. (rlax has the entropy loss but not
    this one.)
    """
    logp = jax.nn.log_softmax(logits)
    if valid is None:
        valid = jnp.ones(logits.shape, bool)
    n = jnp.maximum(jnp.sum(valid, axis=-1), 1).astype(logp.dtype)
    return -jnp.log(n) - jnp.sum(jnp.where(valid, logp, 0.0), axis=-1) / n


def _choose(logits: chex.Array, key: Optional[chex.PRNGKey], greedy: bool) -> chex.Array:
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits).astype(jnp.int32)


class ProgramPolicyHead(hk.Module):
    """Program and autoregressive argument heads of a program-machine env.

    Args:
        num_programs: size of the program head.
        arg_num_values: (3,) size of each argument slot.
        arg_valid: ``library.arg_valid``, (num_programs, 3, width) bool.
        num_args: ``library.num_args``, (num_programs,) arguments each program reads.
        embed_size: size of the embeddings of the chosen program and arguments.
    """

    def __init__(self, num_programs: int, arg_num_values: np.ndarray, arg_valid: np.ndarray,
                 num_args: np.ndarray, embed_size: int, name: Optional[str] = None):
        super().__init__(name=name)
        self.num_programs = num_programs
        self.arg_num_values = [int(n) for n in arg_num_values]
        self.arg_valid = np.asarray(arg_valid)
        self.uses_arg = np.arange(NUM_ARGS)[None, :] < np.asarray(num_args)[:, None]
        self.embed_size = embed_size

    def __call__(self, y: chex.Array, action_mask: chex.Array, action: Optional[chex.Array],
                 key: Optional[chex.PRNGKey], greedy: bool) -> PolicyOutput:
        keys = [None] * (NUM_ARGS + 1) if key is None else list(jax.random.split(key,
                                                                                 NUM_ARGS + 1))
        logits = masked_logits(hk.Linear(self.num_programs, name="program")(y), action_mask)
        program = action[..., 0] if action is not None else _choose(logits, keys[0], greedy)
        log_prob = categorical_log_prob(logits, program)
        entropy = categorical_entropy(logits)
        uniform_kl = categorical_uniform_kl(logits, action_mask)
        # Condition the arguments on the chosen program (and each slot on the earlier ones):
        # WRITE's digit means something else than MOVE_PTR's direction in the same slot.
        context = y + hk.Embed(self.num_programs, y.shape[-1], name="program_embed")(program)
        uses = jnp.asarray(self.uses_arg)[program]  # (..., 3)
        args = []
        for s in range(NUM_ARGS):
            n = self.arg_num_values[s]
            h = jax.nn.relu(context)
            valid = jnp.asarray(self.arg_valid[:, s, :n])[program]
            arg_logits = masked_logits(hk.Linear(n, name=f"arg{s}")(h), valid)
            arg = action[..., 1 + s] if action is not None else _choose(arg_logits, keys[1 + s],
                                                                        greedy)
            # Unused slots are ignored by the env: no log-prob, no entropy, canonical value 0.
            arg = jnp.where(uses[..., s] | (action is not None), arg, 0)
            log_prob += jnp.where(uses[..., s], categorical_log_prob(arg_logits, arg), 0.0)
            entropy += jnp.where(uses[..., s], categorical_entropy(arg_logits), 0.0)
            uniform_kl += jnp.where(uses[..., s], categorical_uniform_kl(arg_logits, valid), 0.0)
            context = context + hk.Embed(n, y.shape[-1], name=f"arg{s}_embed")(
                jnp.clip(arg, 0, n - 1))
            args.append(arg)
        chosen = jnp.stack([program, *args], axis=-1).astype(jnp.int32)
        return PolicyOutput(chosen, log_prob, entropy, uniform_kl)


class DiscretePolicyHead(hk.Module):
    """A categorical over ``num_values`` actions, masked by ``action_mask`` when there is one."""

    def __init__(self, num_values: int, name: Optional[str] = None):
        super().__init__(name=name)
        self.num_values = num_values

    def __call__(self, y: chex.Array, action_mask: Optional[chex.Array],
                 action: Optional[chex.Array], key: Optional[chex.PRNGKey], greedy: bool
                 ) -> PolicyOutput:
        logits = hk.Linear(self.num_values, name="logits")(y)
        if action_mask is not None:
            logits = masked_logits(logits, action_mask.reshape(logits.shape))
        chosen = action if action is not None else _choose(logits, key, greedy)
        valid = None if action_mask is None else action_mask.reshape(logits.shape)
        return PolicyOutput(chosen.astype(jnp.int32), categorical_log_prob(logits, chosen),
                            categorical_entropy(logits), categorical_uniform_kl(logits, valid))


class MultiDiscretePolicyHead(hk.Module):
    """Independent categoricals, one per component of a ``MultiDiscreteArray`` action."""

    def __init__(self, num_values: Sequence[int], name: Optional[str] = None):
        super().__init__(name=name)
        self.num_values = [int(n) for n in num_values]

    def __call__(self, y: chex.Array, action_mask: Optional[chex.Array],
                 action: Optional[chex.Array], key: Optional[chex.PRNGKey], greedy: bool
                 ) -> PolicyOutput:
        keys = [None] * len(self.num_values) if key is None else list(
            jax.random.split(key, len(self.num_values)))
        chosen, log_prob, entropy, uniform_kl = [], 0.0, 0.0, 0.0
        for i, n in enumerate(self.num_values):
            logits = hk.Linear(n, name=f"logits{i}")(y)
            a = action[..., i] if action is not None else _choose(logits, keys[i], greedy)
            chosen.append(a)
            log_prob += categorical_log_prob(logits, a)
            entropy += categorical_entropy(logits)
            uniform_kl += categorical_uniform_kl(logits)
        return PolicyOutput(jnp.stack(chosen, -1).astype(jnp.int32), log_prob, entropy,
                            uniform_kl)


# ----------------------------------------------------------------------------------------------
# The whole network.
# ----------------------------------------------------------------------------------------------
class StepOutput(NamedTuple):
    """One decision per environment.

    Attributes:
        policy: action, log-probability and entropy.
        value: the inner value head, V(s) at the agent's own discount.
        outer_value: the outer value head, V(s) at the fixed outer discount.
    """

    policy: PolicyOutput
    value: chex.Array
    outer_value: chex.Array


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """What the network needs to know about an environment (static)."""

    observation_spec: Any
    action_spec: Any
    is_program_env: bool
    max_depth: int
    num_programs: int = 0
    arg_num_values: Optional[np.ndarray] = None
    arg_valid: Optional[np.ndarray] = None
    num_args: Optional[np.ndarray] = None

    @classmethod
    def from_env(cls, env: Any) -> "EnvInfo":
        """Read the sizes the network needs from an env (its specs and program library, if any)."""
        unwrapped = getattr(env, "unwrapped", env)
        library = getattr(unwrapped, "library", None)
        if library is not None:
            return cls(env.observation_spec, env.action_spec, True, int(unwrapped.max_depth),
                       library.num_programs, np.asarray(library.arg_num_values),
                       np.asarray(library.arg_valid), np.asarray(library.num_args))
        return cls(env.observation_spec, env.action_spec, False, 1)


class ActorCriticNet(hk.Module):
    """The NPI-shaped actor-critic (see the module docstring)."""

    def __init__(self, info: EnvInfo, config: NetworkConfig, name: Optional[str] = None):
        super().__init__(name=name)
        self.info, self.config = info, config
        depth = info.max_depth if config.frame_stack else 1
        if config.core == "lstm":
            core: hk.RNNCore = hk.LSTM(config.core_size, name="lstm")
        elif config.core == "gru":
            core = hk.GRU(config.core_size, name="gru")
        elif config.core == "none":
            core = FeedForwardCore(name="feed_forward")
        else:
            raise ValueError(f"core must be 'lstm', 'gru' or 'none', not {config.core!r}")
        if not config.previous_action:
            num_actions = 0
        elif info.is_program_env:
            num_actions = info.num_programs
        else:
            num_actions = int(np.asarray(getattr(info.action_spec, "num_values", 0)).reshape(-1)[0])
        self.core = FrameStackCore(core, depth, config.frame_step_features, num_actions,
                                   config.previous_invalid, name="frames")

    def initial_state(self, batch_size: int) -> CoreState:
        """The core's initial state for ``batch_size`` envs."""
        return self.core.initial_state(batch_size)

    def features(self, obs: Any, batch_ndim: int) -> chex.Array:
        """The core's input: task encoding, program memory and depth (any batch dims)."""
        return encode_observation(self.info, self.config, obs, batch_ndim)

    def core_step(self, x: chex.Array, obs: Any, first: chex.Array, state: CoreState,
                  invalid: Optional[chex.Array] = None) -> Tuple[chex.Array, CoreState]:
        """One step of the recurrent core on encoded inputs ``x``: ``(core output, new state)``."""
        depth = obs.depth if (self.info.is_program_env and self.config.frame_stack) \
            else jnp.zeros(first.shape, jnp.int32)
        return self.core(x, depth, first, state, invalid)

    def record(self, state: CoreState, action: chex.Array) -> CoreState:
        """Note the action each env's acting frame took (for ``previous_action``)."""
        action_id = action[..., 0] if action.ndim > 1 else action
        return self.core.record(state, action_id)

    def heads(self, core_out: chex.Array, x: chex.Array, obs: Any,
              action: Optional[chex.Array], key: Optional[chex.PRNGKey], greedy: bool
              ) -> StepOutput:
        """The program and argument heads and the value heads on the core's output: sample (or take
        the greedy, or score the given ``action``) under the action mask."""
        info, cfg = self.info, self.config
        # The skip connection lets a reactive policy (most of NPI's programs are) bypass the
        # core's memory; the core adds what the current observation cannot tell.
        y = hk.nets.MLP(cfg.head_layers, activate_final=True, name="head_mlp")(
            jnp.concatenate([core_out, x], axis=-1))
        mask = getattr(obs, "action_mask", None)
        if info.is_program_env:
            policy = ProgramPolicyHead(info.num_programs, info.arg_num_values, info.arg_valid,
                                       info.num_args, cfg.embed_size, name="policy")(
                y, mask, action, key, greedy)
        elif isinstance(info.action_spec, specs.DiscreteArray):
            policy = DiscretePolicyHead(int(info.action_spec.num_values), name="policy")(
                y, mask, action, key, greedy)
        elif isinstance(info.action_spec, specs.MultiDiscreteArray):
            policy = MultiDiscretePolicyHead(np.asarray(info.action_spec.num_values).reshape(-1),
                                             name="policy")(y, None, action, key, greedy)
        else:
            raise TypeError(f"no policy head for action spec {info.action_spec!r}: "
                            "DiscreteArray and MultiDiscreteArray actions are supported")
        if cfg.critic_layers:
            batch_ndim = x.ndim - 1
            value = SeparateCritic(self, name="critic")(obs, batch_ndim)
            outer = SeparateCritic(self, name="outer_critic")(obs, batch_ndim)
            return StepOutput(policy, value, outer)
        value = hk.Linear(1, name="value")(y)[..., 0]
        # The outer head reads stop-gradiented features: its TD loss at the outer discount
        # must not shape the representation the inner agent learns with (as in Bonnet et al.'s
        # toy agent, a second head behind a stop-gradient).
        outer = hk.nets.MLP((cfg.head_layers[-1] if cfg.head_layers else 64, 1),
                            name="outer_value")(jax.lax.stop_gradient(y))[..., 0]
        return StepOutput(policy, value, outer)


class SeparateCritic(hk.Module):
    """A value network with its own parameters (``NetworkConfig.critic_layers``): the
    actor-critic's encoder built again inside this module's scope, with MLP widths
    ``critic_layers``, then a linear value."""

    def __init__(self, net: ActorCriticNet, name: Optional[str] = None):
        super().__init__(name=name)
        self.net = net

    def __call__(self, obs: Any, batch_ndim: int) -> chex.Array:
        config = dataclasses.replace(self.net.config,
                                     encoder_layers=self.net.config.critic_layers)
        x = encode_observation(self.net.info, config, obs, batch_ndim)
        return hk.Linear(1, name="value")(x)[..., 0]


def encode_observation(info: EnvInfo, cfg: NetworkConfig, obs: Any, batch_ndim: int
                       ) -> chex.Array:
    """Task encoding, program memory and depth (any batch dims), as modules of the calling
    module's scope (the actor-critic's features, or a separate critic's own)."""
    if not info.is_program_env:
        return ObservationEncoder(info.observation_spec, cfg, skip=("action_mask",),
                                  name="encoder")(obs, batch_ndim)
    spec = info.observation_spec
    parts = [ObservationEncoder(spec.local, cfg, name="local_encoder")(obs.local, batch_ndim)]
    if getattr(obs, "full", None) is not None:
        parts.append(ObservationEncoder(spec.full, cfg, name="full_encoder")(obs.full,
                                                                            batch_ndim))
    parts.append(hk.Embed(info.num_programs, cfg.embed_size, name="program_memory")(
        obs.program))
    for s, n in enumerate(info.arg_num_values):
        parts.append(hk.Embed(int(n), cfg.embed_size, name=f"arg{s}_memory")(
            jnp.clip(obs.args[..., s], 0, int(n) - 1)))
    parts.append(jax.nn.one_hot(obs.depth, info.max_depth))
    return jnp.concatenate(parts, axis=-1)


class Network(NamedTuple):
    """Pure functions of the actor-critic network (a ``hk.multi_transform``).

    - ``init(key, obs, first) -> params`` from one batch of observations;
    - ``initial_state(batch_size) -> CoreState`` (zeros, no params needed);
    - ``step(params, state, obs, first, key, greedy, action=None, invalid=None) -> (state,
      StepOutput)``: one decision per env (``key`` may be None when ``greedy``);
    - ``unroll(params, state, obs, first, actions, invalid=None) -> StepOutput``: evaluate the
      actions of a time-major sequence ``[T, B]`` (teacher forcing), the loss's pass;
    - ``value(params, state, obs, first, invalid=None) -> (value, outer_value)``: values of
      one batch of observations from ``state``, without changing it;
    - ``record(state, action) -> CoreState`` (no params needed): ``state`` with ``action`` as
      the previous decision of each env's acting frame (``NetworkConfig.previous_action``;
      otherwise ``state`` itself). ``step`` records the action it returns; a caller whose
      env executed another one (a curriculum's forced step) records that one over it.

    ``invalid`` (shaped like ``first``): the env step that produced ``obs`` was an invalid
    no-op (``extras["invalid_action"]``). Only ``NetworkConfig.previous_invalid`` reads it;
    None means False.
    """

    init: Callable[..., Any]
    initial_state: Callable[[int], CoreState]
    step: Callable[..., Tuple[CoreState, StepOutput]]
    unroll: Callable[..., StepOutput]
    value: Callable[..., Tuple[chex.Array, chex.Array]]
    info: EnvInfo
    config: NetworkConfig
    record: Optional[Callable[[CoreState, chex.Array], CoreState]] = None


def make_network(env: Any, config: Optional[NetworkConfig] = None) -> Network:
    """Build the actor-critic network for ``env`` (a program-machine env or any Jumanji env)."""
    config = config or NetworkConfig()
    info = EnvInfo.from_env(env)

    def forward():
        net = ActorCriticNet(info, config, name="actor_critic")

        def step(state, obs, first, key, greedy=False, action=None, invalid=None):
            x = net.features(obs, batch_ndim=1)
            out, state = net.core_step(x, obs, first, state, invalid)
            o = net.heads(out, x, obs, action, key, greedy)
            return net.record(state, o.policy.action), o

        def unroll(state, obs, first, actions, invalid=None):
            # Encoder and heads run batched over T * B outside the time loop (large matmuls);
            # only the recurrent core steps through time.
            x = net.features(obs, batch_ndim=2)
            depth = obs.depth if info.is_program_env else jnp.zeros(first.shape, jnp.int32)
            invalid = jnp.zeros_like(first) if invalid is None else invalid

            def core_fn(s, inputs):
                xt, dt, ft, at, it = inputs
                out, s = net.core(xt, dt if config.frame_stack else jnp.zeros_like(dt), ft, s,
                                  it)
                return out, net.record(s, at)

            core_out, _ = hk.dynamic_unroll(lambda inputs, s: core_fn(s, inputs),
                                            (x, depth, first, actions, invalid), state)
            return net.heads(core_out, x, obs, actions, None, False)

        def value(state, obs, first, invalid=None):
            x = net.features(obs, batch_ndim=1)
            out, _ = net.core_step(x, obs, first, state, invalid)
            o = net.heads(out, x, obs, None, None, True)
            return o.value, o.outer_value

        def init(obs, first):
            state = net.initial_state(first.shape[0])
            _, o = step(state, obs, first, None, True)
            return o

        return init, (step, unroll, value)

    transformed = hk.without_apply_rng(hk.multi_transform(forward))
    step_fn, unroll_fn, value_fn = transformed.apply

    def init(key: chex.PRNGKey, obs: Any, first: chex.Array) -> hk.Params:
        return transformed.init(key, obs, first)

    initial_state = hk.without_apply_rng(hk.transform(
        lambda batch: ActorCriticNet(info, config, name="actor_critic").initial_state(batch)))

    def initial(batch_size: int) -> CoreState:
        return initial_state.apply({}, batch_size)

    record_fn = hk.without_apply_rng(hk.transform(
        lambda state, action: ActorCriticNet(info, config, name="actor_critic").record(
            state, action)))

    def record(state: CoreState, action: chex.Array) -> CoreState:
        return record_fn.apply({}, state, action)

    return Network(init, initial, step_fn, unroll_fn, value_fn, info, config, record)
