"""A size curriculum: the training instances grow once the current ones are solved.

:class:`SizeCurriculumWrapper` wraps a program-machine env built at its *largest* size (the
env's ``max_digits`` / ``max_length``: the arrays' shapes) and caps the size of the instances it
draws at the current rung of a ladder of sizes, ``start, grow(start), ..., largest``
(:func:`size_ladder`). The rung lives in the env state (the same value in every env of a batch,
as :class:`~npigym.agents.curriculum.SubprogramStartWrapper` keeps its open programs), so the
jitted training step is compiled once, each seed of a vmapped batch climbs its own ladder, and
a checkpoint holds, and a resume restores, where each seed stands.

After every update the learner reports the episodes that ended, per start program
(:meth:`SizeCurriculumWrapper.update_curriculum`); the wrapper folds the success rate of the
whole-task episodes (those started at the root) into an exponential moving average with decay
``decay`` that starts at 0 on each rung, and climbs one rung once the average reaches
``threshold`` (:func:`schedule_update`; :func:`replay_schedule` replays it on a success
history). Starting from 0, a rung takes at least ``log(1 - threshold) / log(decay)`` updates
(45 at 0.9 and 0.95) even when every episode succeeds.

It composes with ``SubprogramStartWrapper`` (inside it: every instance of a subprogram's
episode is capped too): this wrapper is the outer one and passes the size to the inner
``reset(key, size=...)`` / ``next_episode(state, key, size=...)``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import chex
import jax.numpy as jnp
from jumanji.types import TimeStep
from jumanji.wrappers import Wrapper


def size_ladder(start: int, largest: int, factor: float = 2.0, step: int = 0) -> Tuple[int, ...]:
    """The sizes a curriculum climbs: ``start``, then ``min(largest, max(s + 1, s + step,
    ceil(s * factor)))`` after each ``s``, up to ``largest``.

    >>> size_ladder(1, 20)
    (1, 2, 4, 8, 16, 20)
    >>> size_ladder(2, 10, factor=1.0, step=3)
    (2, 5, 8, 10)
    """
    if not 1 <= start <= largest:
        raise ValueError(f"start must be in [1, {largest}], not {start}")
    if not factor >= 1.0 or not math.isfinite(factor):
        raise ValueError(f"factor must be >= 1, not {factor}")
    if step < 0:
        raise ValueError(f"step must be >= 0, not {step}")
    sizes = [int(start)]
    while sizes[-1] < largest:
        s = sizes[-1]
        sizes.append(min(int(largest), max(s + 1, s + int(step), math.ceil(s * factor))))
    return tuple(sizes)


def schedule_update(level: chex.Array, rate: chex.Array, episodes: chex.Array,
                    successes: chex.Array, *, threshold: float, decay: float, num_levels: int
                    ) -> Tuple[chex.Array, chex.Array]:
    """One update of the schedule: ``(level, rate)`` after an update whose whole-task episodes
    were ``episodes``, ``successes`` of them solved (jnp or numpy scalars; jittable).

    ``rate`` is the moving average of the success rate on the current rung (unchanged by an
    update without episodes); at ``rate >= threshold`` the level climbs one rung (not past
    ``num_levels - 1``) and the average restarts at 0.
    """
    episodes = jnp.asarray(episodes, jnp.float32)
    observed = jnp.asarray(successes, jnp.float32) / jnp.maximum(episodes, 1.0)
    rate = jnp.where(episodes > 0, decay * rate + (1.0 - decay) * observed, rate)
    grow = (rate >= threshold) & (level < num_levels - 1)
    level = jnp.where(grow, level + 1, level).astype(jnp.int32)
    rate = jnp.where(grow, 0.0, rate).astype(jnp.float32)
    return level, rate


def replay_schedule(history: Sequence[Tuple[float, float]], ladder: Sequence[int],
                    threshold: float, decay: float) -> List[int]:
    """The size after each update of a history of ``(episodes, successes)`` per update, as
    :class:`SizeCurriculumWrapper` would set it (a pure function, for tests and analysis)."""
    level, rate = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)
    sizes = []
    for episodes, successes in history:
        level, rate = schedule_update(level, rate, episodes, successes, threshold=threshold,
                                      decay=decay, num_levels=len(ladder))
        sizes.append(int(ladder[int(level)]))
    return sizes


@chex.dataclass
class SizeState:
    """State of :class:`SizeCurriculumWrapper`.

    Attributes:
        inner: the wrapped env's state.
        level: () int32, the rung of the size ladder the instances are drawn at.
        rate: () float32, moving average of the whole-task success rate on this rung.
        key: the episode's key (auto-reset derives the next one from it).
    """

    inner: Any
    level: chex.Array
    rate: chex.Array
    key: chex.PRNGKey


class SizeCurriculumWrapper(Wrapper):
    """Grow the instances' size as the whole task is solved (see the module docstring).

    Args:
        env: a program-machine env (or a ``SubprogramStartWrapper`` of one) built at the
            largest size, whose generator can cap sizes (``sample_at_size``: Addition's and
            Sorting's random generators).
        start: the first rung (default: the generator's smallest size).
        factor, step: the ladder's growth (:func:`size_ladder`).
        threshold: climb once the moving success rate on the rung reaches this, in (0, 1].
        decay: per-update decay of that moving average, in [0, 1).
    """

    def __init__(self, env: Any, start: Optional[int] = None, factor: float = 2.0,
                 step: int = 0, threshold: float = 0.9, decay: float = 0.95):
        super().__init__(env)
        base = getattr(env, "unwrapped", env)
        library = getattr(base, "library", None)
        generator = getattr(base, "generator", None)
        size_range = getattr(generator, "size_range", None)
        if library is None or size_range is None:
            raise ValueError(f"{type(base).__name__} cannot cap its instances' size (a size "
                             "curriculum needs a program-machine env with a random generator "
                             "of sizes, such as Addition's or Sorting's)")
        smallest, largest = size_range
        start = smallest if start is None else int(start)
        if not smallest <= start <= largest:
            raise ValueError(f"start must be in [{smallest}, {largest}] (the env's smallest "
                             f"and largest sizes), not {start}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], not {threshold}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), not {decay}")
        weights = getattr(env, "weights", None)  # a SubprogramStartWrapper inside
        root_name = library.names[library.root]
        if weights is not None and root_name not in weights:
            raise ValueError("the size grows as whole-task episodes succeed, so the program "
                             f"curriculum must start some at the root ({root_name})")
        self.library = library
        self.ladder = size_ladder(start, largest, factor, step)
        self.threshold = float(threshold)
        self.decay = float(decay)
        self._ladder = jnp.asarray(self.ladder, jnp.int32)
        self._inner_next = getattr(env, "next_episode", None)
        self._inner_update = getattr(env, "update_curriculum", None)
        self._inner_metrics = getattr(env, "curriculum_metrics", None)

    def size(self, state: SizeState) -> chex.Array:
        """The current largest size of ``state``'s instances."""
        return self._ladder[state.level]

    def reset(self, key: chex.PRNGKey) -> Tuple[SizeState, TimeStep]:
        """A first episode, on the ladder's first rung."""
        level, rate = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)
        inner, ts = self._env.reset(key, size=self._ladder[level])
        return SizeState(inner=inner, level=level, rate=rate, key=key), ts

    def next_episode(self, state: SizeState, key: chex.PRNGKey) -> Tuple[SizeState, TimeStep]:
        """The episode after ``state``'s, on its rung (auto-reset wrappers call this)."""
        size = self._ladder[state.level]
        if self._inner_next is not None:
            inner, ts = self._inner_next(state.inner, key, size=size)
        else:
            inner, ts = self._env.reset(key, size=size)
        return state.replace(inner=inner, key=key), ts

    def step(self, state: SizeState, action: chex.Array) -> Tuple[SizeState, TimeStep]:
        inner, ts = self._env.step(state.inner, action)
        return state.replace(inner=inner), ts

    def update_curriculum(self, state: SizeState, episodes: chex.Array,
                          successes: chex.Array) -> SizeState:
        """Fold an update's episodes into a batch of states (leading env axis; the first
        row's schedule is used and written to every row) and the inner curriculum's.

        Args:
            episodes: (num_programs,) episodes that ended, per start program.
            successes: (num_programs,) of those, the ones that ended with success.
        """
        inner = state.inner
        if self._inner_update is not None:
            inner = self._inner_update(inner, episodes, successes)
        root = self.library.root
        level, rate = schedule_update(state.level[0], state.rate[0], episodes[root],
                                      successes[root], threshold=self.threshold,
                                      decay=self.decay, num_levels=len(self.ladder))
        return state.replace(inner=inner, level=jnp.broadcast_to(level, state.level.shape),
                             rate=jnp.broadcast_to(rate, state.rate.shape))

    def curriculum_metrics(self, state: SizeState) -> Dict[str, chex.Array]:
        """``curriculum_size`` (the current largest size) and ``curriculum_size_success`` (the
        moving success rate on it), with the inner curriculum's metrics."""
        out = dict(self._inner_metrics(state.inner)) if self._inner_metrics is not None else {}
        out.update(curriculum_size=self._ladder[state.level[0]],
                   curriculum_size_success=state.rate[0])
        return out

    def render(self, state: SizeState, mode: Optional[str] = None) -> Any:
        return self._env.render(state.inner, mode)
