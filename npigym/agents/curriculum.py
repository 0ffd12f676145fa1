"""Episodes that start inside a subprogram: every program is its own task (AlphaNPI style).

:class:`SubprogramStartWrapper` turns a hierarchical program-machine env into a mixture of
tasks: each episode picks a program ``P`` (the root, or a subprogram) and, for a subprogram,
runs the env's expert on a fresh instance up to one of its first calls of ``P`` (drawn
uniformly, so that later columns, carries etc. appear; an instance that never calls ``P`` is
replaced by a spare one), makes that call, and hands the agent ``P``'s fresh frame. The
episode ends (termination) when ``P`` returns, and ``extras["success"]`` is then ``P``'s
postcondition. The root's episodes are ordinary episodes. With the frame-aware credit of the
actor-critic and a postcondition bonus, the subprograms learn their own jobs from the first
updates instead of waiting until their callers call them at the right moments.

With ``unlock_threshold > 0`` the mixture also grows as the programs are learned, callees
first (AlphaNPI trains its programs level by level the same way): a program's episodes start
only once every agent-executed program it calls has a training success rate of at least the
threshold. The rates are exponential moving averages of what the learner reports after each
update (:meth:`SubprogramStartWrapper.update_curriculum`); they and the open programs live in
the env state (the same values in every env of a batch), so they are vmapped over seeds,
checkpointed and resumed with the rest of the training state, and auto-reset carries them into
the next episode (:meth:`SubprogramStartWrapper.next_episode`).

The machine has no way to start an episode at a chosen frame, hence this wrapper (it only uses
``reset``, ``step`` and ``expert_action``). A ``start_program`` knob on ``ProgramEnv.reset`` would
make it cheaper: here the expert prefix is a ``lax.while_loop`` in ``reset`` (capped by
``max_prefix_steps``), which the batched auto-reset runs, in a step where episodes end, for a
pass of the smallest size that holds them (or for every env when more end).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import StepType, TimeStep, restart
from jumanji.wrappers import Wrapper

from npigym.envs.machine.generator import hash_stream, next_key, seed_word
from npigym.envs.machine.library import KIND_CALL, RETURN_ID
from npigym.envs.machine.types import State


def _derived_key(key: chex.PRNGKey) -> chex.PRNGKey:
    """A key for a spare instance, independent of ``key`` and of the keys auto-reset derives
    from it (``next_key`` of a salted copy)."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(key) if typed else key
    data = data ^ jnp.asarray(0x5EED5EED, jnp.uint32).astype(data.dtype)
    return next_key(jax.random.wrap_key_data(data, impl=jax.random.key_impl(key))
                    if typed else data)


@chex.dataclass
class StartState:
    """State of :class:`SubprogramStartWrapper`.

    Attributes:
        inner: the machine's state.
        start_depth: () int32, depth of the frame the episode started in.
        program: () int32, that frame's program (the task of this episode).
        forced_left: () int32, decisions of the start frame still to be made by the expert.
        key: the episode's key (auto-reset derives the next one from it).
        success: (num_programs,) float32, each program's training success rate (moving
            average of what the learner reported; 0 until reported).
        opened: (num_programs,) bool, the programs whose episodes are drawn (with the weights
            given to the wrapper); the others' weight is 0.
        walk: with ``starts="shadow"``, the expert's background walk (:class:`ShadowWalk`);
            None otherwise.
    """

    inner: State
    start_depth: chex.Array
    program: chex.Array
    forced_left: chex.Array
    key: chex.PRNGKey
    success: chex.Array
    opened: chex.Array
    walk: Any = None


@chex.dataclass
class ShadowWalk:
    """The expert's background walk of :class:`SubprogramStartWrapper` (``starts="shadow"``).

    Attributes:
        state: the machine state of the walk's instance.
        done: () bool, that instance is finished (the walk goes on with the next episode's
            fresh instance).
        calls: (num_programs,) int32, the calls of each program the walk has made in it.
        pick: (num_programs,) int32, which call of each program (1 to ``max_skip + 1``,
            drawn per instance) becomes that program's start; an instance with fewer calls
            gives its last.
        starts: per program (leading axis ``num_programs``), the walk's state just before
            the picked call: where that program's next episodes start.
        has_start: (num_programs,) bool, ``starts`` holds one for that program.
    """

    state: State
    done: chex.Array
    calls: chex.Array
    pick: chex.Array
    starts: State
    has_start: chex.Array


class SubprogramStartWrapper(Wrapper):
    """Start episodes at the root or at a subprogram's frame (see the module docstring).

    Args:
        env: a program-machine env whose programs the agent executes (it needs an expert:
            not a flat posing).
        weights: ``{program name: weight}``, how often episodes start in each program (the
            root's name for whole-task episodes). Programs must be agent-executed.
        max_skip: (``starts="prefix"``) start at one of the first ``max_skip + 1`` calls of
            the chosen program, uniformly among those the instance makes.
        max_prefix_steps: (``starts="prefix"``) cap on the expert steps run before the
            start; when ``P`` is not called within it, in the instance or in the spare one
            that replaces an instance without a call (e.g. no column needs a CARRY), the
            episode starts at the root. (``starts="shadow"``: the expert steps of the first
            episode's walk, run in ``reset``.)
        starts: where a subprogram's start state comes from. ``"prefix"``: the expert runs
            from a fresh instance up to the chosen call in the episode's reset (a
            ``lax.while_loop`` of up to ``max_prefix_steps`` expert steps for every env the
            batched auto-reset resets). ``"shadow"``: every env also carries a background
            walk of the expert over fresh instances, one expert step per env step, keeping
            per program the state before one of its first ``max_skip + 1`` calls in the
            walk's instance (drawn uniformly per instance); an episode of ``P`` starts from
            the latest such state (the root if the walk has not met ``P`` yet). A reset then
            costs one call instead of the prefix: with the addition-hierarchical preset the
            env steps of a training update cost about a quarter of the prefix mode's
            (``benchmarks/results/profile_addition-hierarchical.md``). Consecutive episodes
            of ``P`` in an env can start from the same state until the walk passes the next
            instance's picked call.
        max_forced: a *reverse curriculum* inside the start frame (Florensa et al. 2017;
            Salimans & Chen 2018): the expert also makes the first ``k`` decisions of ``P``
            (and everything they call), ``k = 0`` in half the episodes and otherwise uniform in
            ``[1, max_forced]``, but never ``P``'s own RETURN; the agent finishes ``P``. Those
            steps are flagged ``extras["forced"]``; the agent's network sees them (its memory
            stays that of a frame that made them: ``extras["executed_action"]``, every step,
            is the action the env executed, the expert's where forced, for the learner to
            record instead of its own sample) but the loss ignores them. The learning
            signal is still only the reward: the expert sets up start states, it is never
            imitated. 0 turns it off.
        unlock_threshold: callees first (see the module docstring): a program of ``weights``
            is drawn only once each program of ``weights`` that it calls has a training
            success rate of at least this; opened programs stay open. 0 (the default): all
            from the start.
        success_decay: the per-update decay of the success rates' moving average.
    """

    def __init__(self, env: Any, weights: Mapping[str, float], max_skip: int = 2,
                 max_prefix_steps: int = 64, max_forced: int = 0,
                 unlock_threshold: float = 0.0, success_decay: float = 0.95,
                 starts: str = "prefix"):
        super().__init__(env)
        if starts not in ("prefix", "shadow"):
            raise ValueError(f"starts must be 'prefix' or 'shadow', not {starts!r}")
        base = getattr(env, "unwrapped", env)
        if not getattr(base, "has_expert", False):
            raise ValueError("a subprogram curriculum needs the env's expert; it is not "
                             "defined for flat or inlined posings")
        library = base.library
        if not weights:
            raise ValueError("weights must name at least one program")
        probs = np.zeros(library.num_programs, np.float64)
        for name, w in weights.items():
            pid = library.id(name)
            if pid != library.root and library.kind[pid] != KIND_CALL:
                raise ValueError(f"curriculum program {name} must be executed by the agent "
                                 f"(mode 'agent'), not {library[pid].mode!r}")
            if not (isinstance(w, (int, float)) and w >= 0):
                raise ValueError(f"curriculum weight of {name} must be >= 0, not {w!r}")
            probs[pid] = float(w)
        if probs.sum() <= 0:
            raise ValueError("curriculum weights must not all be 0")
        if not (isinstance(unlock_threshold, (int, float)) and 0 <= unlock_threshold <= 1):
            raise ValueError(f"unlock_threshold must be in [0, 1], not {unlock_threshold!r}")
        if not (isinstance(success_decay, (int, float)) and 0 <= success_decay < 1):
            raise ValueError(f"success_decay must be in [0, 1), not {success_decay!r}")
        # callees[p, q]: q is a curriculum program that p calls (not itself, not RETURN).
        in_curriculum = probs > 0
        callees = library.callable & in_curriculum[None, :] & in_curriculum[:, None]
        np.fill_diagonal(callees, False)
        callees[:, RETURN_ID] = False
        opened = ~callees.any(axis=1) if unlock_threshold > 0 else np.ones_like(in_curriculum)
        if not (opened & in_curriculum).any():
            raise ValueError("with unlock_threshold > 0 some curriculum program must call no "
                             "other curriculum program (they call each other in a cycle)")
        self.library = library
        self.weights = {library.names[i]: float(p) for i, p in enumerate(probs) if p > 0}
        self._base_weights = jnp.asarray(probs, jnp.float32)
        self._callees = jnp.asarray(callees)
        self._initially_open = jnp.asarray(opened)
        self.starts = starts
        # Programs whose calls the shadow walk records (the root's episodes need none).
        startable = in_curriculum.copy()
        startable[library.root] = False
        self._startable = jnp.asarray(startable)
        self.max_skip = int(max_skip)
        self.max_prefix_steps = int(max_prefix_steps)
        self.max_forced = int(max_forced)
        self.unlock_threshold = float(unlock_threshold)
        self.success_decay = float(success_decay)

    def reset(self, key: chex.PRNGKey, size: Optional[chex.Array] = None
              ) -> Tuple[StartState, TimeStep]:
        """A first episode: only the programs open from the start (all, without gating).
        ``size`` caps the instances' size (``ProgramEnv.reset``; a size curriculum's)."""
        success = jnp.zeros((self.library.num_programs,), jnp.float32)
        shadow = None
        if self.starts == "shadow":
            # The first episode's walk: up to max_prefix_steps expert steps of a spare
            # instance, run here once (later episodes inherit the walk as it goes on).
            first, _ = (self._env.reset(_derived_key(key)) if size is None
                        else self._env.reset(_derived_key(key), size=size))
            num = self.library.num_programs
            shadow = self._new_walk(first, key, ShadowWalk(
                state=first, done=jnp.zeros((), bool), calls=jnp.zeros((num,), jnp.int32),
                pick=jnp.ones((num,), jnp.int32),
                starts=jax.tree.map(lambda x: jnp.broadcast_to(x, (num, *x.shape)), first),
                has_start=jnp.zeros((num,), bool)))

            def cond(carry):
                n, walk = carry
                return ~walk.done & (n < self.max_prefix_steps)

            _, shadow = jax.lax.while_loop(
                cond, lambda c: (c[0] + 1, self._advance_shadow(c[1])),
                (jnp.zeros((), jnp.int32), shadow))
        return self._start(key, success, self._initially_open, size, shadow)

    def next_episode(self, state: StartState, key: chex.PRNGKey,
                     size: Optional[chex.Array] = None) -> Tuple[StartState, TimeStep]:
        """The episode after ``state``'s: ``reset(key)``, but drawn with, and keeping, the
        curriculum's current open programs and success rates (auto-reset wrappers call this)."""
        return self._start(key, state.success, state.opened, size, state.walk)

    def update_curriculum(self, state: StartState, episodes: chex.Array,
                          successes: chex.Array) -> StartState:
        """Fold the episodes a learner saw into a batch of states and open the programs whose
        callees are now good enough.

        Args:
            state: a batch of states (leading env axis; the curriculum fields are the same in
                every row, and the first row's are used).
            episodes: (num_programs,) episodes that ended, per start program.
            successes: (num_programs,) of those, the ones that ended with success.
        Returns:
            ``state`` with the new rates and opened programs in every row.
        """
        num = self.library.num_programs
        chex.assert_shape((episodes, successes), (num,))
        rate = successes / jnp.maximum(episodes, 1)
        old = state.success[0]
        success = jnp.where(episodes > 0,
                            self.success_decay * old + (1 - self.success_decay) * rate, old)
        ready = state.opened[0] & (success >= self.unlock_threshold)
        opened = state.opened[0] | jnp.all(ready[None, :] | ~self._callees, axis=1)

        def rows(x):
            return jnp.broadcast_to(x, state.opened.shape[:-1] + x.shape)

        return state.replace(success=rows(success), opened=rows(opened))

    def curriculum_metrics(self, state: StartState) -> Dict[str, chex.Array]:
        """What the learner logs of a batch of states after :meth:`update_curriculum`."""
        return {"program_open": state.opened[0]}

    def _new_walk(self, instance: State, key: chex.PRNGKey, walk: ShadowWalk) -> ShadowWalk:
        """``walk`` gone on to ``instance``, with fresh picks drawn from ``key``."""
        words = hash_stream(seed_word(key), 300 + jnp.arange(self.library.num_programs))
        pick = 1 + (words % jnp.uint32(self.max_skip + 1)).astype(jnp.int32)
        return walk.replace(state=instance, done=jnp.zeros((), bool),
                            calls=jnp.zeros_like(walk.calls), pick=pick)

    def _advance_shadow(self, walk: ShadowWalk) -> ShadowWalk:
        """One expert step of the shadow walk (none once its instance is finished), first
        keeping the state as a start of the program the expert is about to call, up to that
        program's picked call."""
        env = self._env
        action = env.expert_action(walk.state)
        calls = ((jnp.arange(self.library.num_programs) == action[0]) & self._startable
                 & ~walk.done)
        keep = calls & (walk.calls < walk.pick)
        starts = jax.tree.map(
            lambda slots, x: jnp.where(keep.reshape((-1,) + (1,) * x.ndim), x[None], slots),
            walk.starts, walk.state)
        stepped, ts = env.step(walk.state, action)
        state = jax.tree.map(lambda a, b: jnp.where(walk.done, b, a), stepped, walk.state)
        return walk.replace(state=state, done=walk.done | ts.last(),
                            calls=walk.calls + calls.astype(jnp.int32), starts=starts,
                            has_start=walk.has_start | keep)

    def _start(self, key: chex.PRNGKey, success: chex.Array, opened: chex.Array,
               size: Optional[chex.Array] = None, shadow: Optional[ShadowWalk] = None
               ) -> Tuple[StartState, TimeStep]:
        env = self._env

        def reset(k):
            return env.reset(k) if size is None else env.reset(k, size=size)

        root_state, root_ts = reset(key)
        word = seed_word(key)
        u = (hash_stream(word, 101) >> 8).astype(jnp.float32) / float(1 << 24)
        weights = self._base_weights * opened
        cdf = jnp.cumsum(weights) / jnp.sum(weights)
        program = jnp.minimum(jnp.searchsorted(cdf, u, side="right"),
                              self.library.num_programs - 1).astype(jnp.int32)
        is_root = program == self.library.root
        if shadow is not None:
            state = jax.tree.map(lambda x: x[program], shadow.starts)
            found = shadow.has_start[program]
            # A finished walk goes on with this episode's fresh instance.
            walk = jax.tree.map(lambda a, b: jnp.where(shadow.done, a, b),
                                self._new_walk(root_state, key, shadow), shadow)
            return self._begin(key, word, success, opened, program, is_root, state, found,
                               root_state, root_ts, {"walk": walk})
        calls_to_pick_from = self.max_skip + 1

        # Run the expert and pick the call of `program` to start at: one of its first
        # max_skip + 1 calls, uniformly (reservoir sampling: the k-th call replaces the pick
        # with probability 1/k). If the instance ends without calling it (no column needs a
        # CARRY), the expert goes on with a spare instance; only if that one has no call
        # either (or max_prefix_steps pass) does the episode start at the root. ("The
        # (skip + 1)-th call, else the root" sent two thirds of CARRY's episodes to the root
        # on 1-5 digit instances; a fresh instance at every miss cost training 35 % of its
        # speed, the one spare 20 %.)
        def cond(carry):
            _, ended, n, seen, _, _ = carry
            return ~is_root & (seen < calls_to_pick_from) & ~ended & (n < self.max_prefix_steps)

        def body(carry):
            state, _, n, seen, pick, spare_left = carry
            action = env.expert_action(state)
            calls_it = action[0] == program
            seen = seen + calls_it.astype(jnp.int32)
            one_in_seen = hash_stream(word, 200 + seen) % jnp.maximum(seen, 1).astype(
                jnp.uint32) == 0
            pick = jax.tree.map(lambda x, y: jnp.where(calls_it & one_in_seen, x, y),
                                state, pick)
            state, ts = env.step(state, action)
            again = ts.last() & (seen == 0) & spare_left
            state = jax.tree.map(lambda x, y: jnp.where(again, x, y), spare, state)
            return state, ts.last() & ~again, n + 1, seen, pick, spare_left & ~again

        spare, _ = reset(_derived_key(key))
        zero = jnp.zeros((), jnp.int32)
        _, _, _, seen, state, _ = jax.lax.while_loop(
            cond, body, (root_state, jnp.zeros((), bool), zero, zero, root_state,
                         jnp.ones((), bool)))
        return self._begin(key, word, success, opened, program, is_root, state, seen > 0,
                           root_state, root_ts, {})

    def _begin(self, key, word, success, opened, program, is_root, state, found, root_state,
               root_ts, extra) -> Tuple[StartState, TimeStep]:
        """The episode: ``program``'s call made from ``state`` (if ``found``), else the root."""
        env = self._env
        # Make the call: the agent starts in the callee's fresh frame.
        called, called_ts = env.step(state, env.expert_action(state))
        use_sub = found & ~is_root
        inner = jax.tree.map(lambda a, b: jnp.where(use_sub, a, b), called, root_state)
        inner = inner.replace(step_count=jnp.zeros((), jnp.int32))
        obs = jax.tree.map(lambda a, b: jnp.where(use_sub, a, b), called_ts.observation,
                           root_ts.observation)
        program = jnp.where(use_sub, program, self.library.root)
        # Half the episodes are the whole program; the others hand over after 1..max_forced
        # of its decisions (a uniform k in [0, max_forced] would leave most of the practice of
        # short programs to their last steps).
        forced = 1 + (hash_stream(word, 103) % jnp.uint32(max(self.max_forced, 1))
                      ).astype(jnp.int32)
        forced = jnp.where((hash_stream(word, 104) & 1) == 0, 0, forced)
        forced = jnp.where(self.max_forced > 0, forced, 0)
        start = StartState(inner=inner, start_depth=inner.stack.depth, program=program,
                           forced_left=jnp.where(use_sub, forced, 0), key=key,
                           success=success, opened=opened, **extra)
        extras = {**root_ts.extras, "start_program": program,
                  "forced": jnp.zeros((), bool),
                  # (no step was executed; the same leaves as a step's extras)
                  "executed_action": jnp.zeros(4, jnp.int32)}
        return start, restart(obs, extras)

    def step(self, state: StartState, action: chex.Array) -> Tuple[StartState, TimeStep]:
        env = self._env
        in_start_frame = state.inner.stack.depth == state.start_depth
        expert = env.expert_action(state.inner) if self.max_forced else jnp.zeros(4, jnp.int32)
        # The agent always makes the start frame's RETURN itself.
        forcing = (state.forced_left > 0) & ~(in_start_frame & (expert[0] == RETURN_ID))
        action = jnp.where(forcing, expert, jnp.asarray(action, jnp.int32))
        forced_left = jnp.where(forcing, state.forced_left - in_start_frame.astype(jnp.int32),
                                0)
        inner, ts = env.step(state.inner, action)
        if self.starts == "shadow":
            state = state.replace(walk=self._advance_shadow(state.walk))
        # The start frame returned: its sub-episode is over (the root's RETURN already
        # terminates the env's own episode).
        ended = (state.start_depth > 0) & (inner.stack.depth < state.start_depth)
        extras = dict(ts.extras)
        extras["success"] = jnp.where(ended, ts.extras["postcondition"], ts.extras["success"])
        extras["start_program"] = state.program
        extras["forced"] = forcing
        extras["executed_action"] = action
        ts = ts.replace(
            step_type=jnp.where(ended, StepType.LAST, ts.step_type),
            discount=jnp.where(ended, jnp.zeros_like(ts.discount), ts.discount),
            extras=extras)
        return state.replace(inner=inner, forced_left=forced_left), ts

    def render(self, state: StartState, mode: Optional[str] = None) -> Any:
        return self._env.render(state.inner, mode)

