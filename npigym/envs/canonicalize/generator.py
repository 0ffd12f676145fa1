"""Canonicalization instances: a car model, a start pose and a target pose.

Poses are given in degrees to the constructors (multiples of 15) and stored as grid indices.
Generation follows the machine's rule for the reset path (``npigym.envs.machine.generator``):
one word from the key, expanded with an integer hash; no threefry, no per-element modulo.
"""

from __future__ import annotations

import abc
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import chex
import jax.numpy as jnp
import numpy as np

from npigym.envs.canonicalize import constants as c
from npigym.envs.canonicalize import shapes
from npigym.envs.canonicalize.task import distances, host_distances
from npigym.envs.canonicalize.types import Scene
from npigym.envs.machine.generator import (
    Generator,
    hash_stream,
    scale16,
    seed_word,
    uniform_int,
)

Family = Union[str, Sequence[str]]
MAX_NUM_MODELS = 1 << 16  # a catalogue index is drawn from 16 bits


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _check_angle(name: str, value) -> int:
    if not _is_int(value) or value % c.DEGREES_PER_STEP:
        raise ValueError(f"{name} must be an int multiple of {c.DEGREES_PER_STEP} degrees, "
                         f"not {value!r}")
    return int(value)


def _check_pair(name: str, value) -> Tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high) of degrees, not {value!r}")
    return _check_angle(f"{name}[0]", value[0]), _check_angle(f"{name}[1]", value[1])


def check_elevation_range(value) -> Tuple[int, int]:
    """Validate an ``elevation_range`` knob (degrees); returns it as ints."""
    low, high = _check_pair("elevation_range", value)
    if not 0 <= low <= high <= 90:
        raise ValueError(f"elevation_range must satisfy 0 <= low <= high <= 90 degrees (the "
                         f"camera stays above the ground), not {value!r}")
    return low, high


def check_azimuth_range(value) -> Tuple[int, int]:
    """Validate an ``azimuth_range`` knob (degrees, inclusive, may wrap past 180)."""
    low, high = _check_pair("azimuth_range", value)
    if not low <= high < low + 360:
        raise ValueError(f"azimuth_range must satisfy low <= high < low + 360 degrees, "
                         f"e.g. (-75, 75) or (-180, 165) for the full circle, not {value!r}")
    return low, high


def azimuth_index(degrees: int) -> int:
    return (degrees // c.DEGREES_PER_STEP) % c.NUM_AZIMUTHS


def elevation_level(degrees: int) -> int:
    return degrees // c.DEGREES_PER_STEP


class CanonicalizeGenerator(Generator, abc.ABC):
    """Base of canonicalization generators: the camera's elevation bounds and the models.

    Args:
        elevation_range: (low, high) degrees, the camera's elevation bounds: ACT(UP / DOWN)
            past them is invalid. Multiples of 15 in [0, 90].
        family: ``"cars"`` (every style), a style of ``shapes.STYLES`` (``"sedan"``, ``"suv"``,
            ``"pickup"``, ``"sports"``) or a sequence of styles.
        split: ``"seen"`` (training models) or ``"unseen"`` (held-out models); the two draw
            from disjoint halves of the parameter space (``shapes`` module).
        shape_seed: selects the catalogues of models (a non-negative int below 2**32).
    """

    def __init__(self, elevation_range=c.DEFAULT_ELEVATION_RANGE, family: Family = "cars",
                 split: str = "seen", shape_seed: int = 0):
        self.elevation_range = check_elevation_range(elevation_range)
        self.min_level = elevation_level(self.elevation_range[0])
        self.max_level = elevation_level(self.elevation_range[1])
        self.styles = shapes.styles_of(family)
        self.family = family if isinstance(family, str) else tuple(family)
        if split not in shapes.SPLITS:
            raise ValueError(f"split must be one of {shapes.SPLITS}, not {split!r}")
        self.split = split
        self.split_index = shapes.SPLITS.index(split)
        if not _is_int(shape_seed) or not 0 <= shape_seed < 2**32:
            raise ValueError(f"shape_seed must be an int in [0, 2**32), not {shape_seed!r}")
        self.shape_seed = int(shape_seed)

    def model_code(self, index: chex.Array) -> chex.Array:
        """Shape code of model ``index`` of this generator's catalogue (split, family, seed)."""
        return shapes.catalogue_code(self.shape_seed, self.split_index, self.styles, index)

    @abc.abstractmethod
    def support(self) -> np.ndarray:
        """(K, 4) int: every (azimuth, elevation, target azimuth, target elevation) the
        generator can produce, as grid indices (host side; sizes the default step limit)."""

    def _shape_repr(self) -> str:
        return (f"elevation_range={self.elevation_range}, family={self.family!r}, "
                f"split={self.split!r}, shape_seed={self.shape_seed}")


class RandomGenerator(CanonicalizeGenerator):
    """Random start poses, targets and models.

    The target is ``target`` or, when ``None``, uniform over ``azimuth_range`` x
    ``elevation_range``. The start is uniform over the same ranges, restricted to poses
    ``min_rotations`` to ``max_rotations`` ACT calls from the target (the shorter way round);
    the model is uniform over the split's catalogue of ``num_models`` models (a fresh model
    every episode when ``None``). An instance costs one word from the key, expanded by hashing.

    Args:
        azimuth_range: (low, high) degrees of the start (and random target) azimuth, inclusive,
            multiples of 15; may wrap, e.g. (-75, 75) (the paper's) or (-180, 165).
        elevation_range: (low, high) degrees of the start (and random target) elevation, also
            the camera's bounds; the paper's is (0, 60).
        target: (azimuth, elevation) degrees, default (0, 15) as in the paper; the elevation
            must be within ``elevation_range``. ``None`` draws a random target per episode.
        min_rotations, max_rotations: bounds on the ACT calls the expert needs (``None``: no
            upper bound). Table 1 of the paper evaluates trajectories of at most 4.
        num_models: catalogue size per split, 1 to 65536, or ``None`` for an unlimited family.
        family, split, shape_seed: as in ``CanonicalizeGenerator``.

    Raises:
        ValueError: for a malformed knob, or when some target has no start pose at an allowed
            number of rotations.
    """

    def __init__(self, azimuth_range=c.DEFAULT_AZIMUTH_RANGE,
                 elevation_range=c.DEFAULT_ELEVATION_RANGE,
                 target: Optional[Tuple[int, int]] = c.DEFAULT_TARGET,
                 min_rotations: int = 0, max_rotations: Optional[int] = None,
                 num_models: Optional[int] = c.DEFAULT_NUM_MODELS, family: Family = "cars",
                 split: str = "seen", shape_seed: int = 0):
        super().__init__(elevation_range, family, split, shape_seed)
        self.azimuth_range = check_azimuth_range(azimuth_range)
        if target is not None:
            t_az, t_el = _check_pair("target", target)
            if not self.elevation_range[0] <= t_el <= self.elevation_range[1]:
                raise ValueError(f"target elevation {t_el} is outside elevation_range "
                                 f"{self.elevation_range}")
            target = (t_az, t_el)
        self.target = target
        if not _is_int(min_rotations) or min_rotations < 0:
            raise ValueError(f"min_rotations must be a non-negative int, not {min_rotations!r}")
        if max_rotations is not None and (not _is_int(max_rotations)
                                          or max_rotations < min_rotations):
            raise ValueError(f"max_rotations must be None or an int >= min_rotations="
                             f"{min_rotations}, not {max_rotations!r}")
        self.min_rotations = int(min_rotations)
        self.max_rotations = None if max_rotations is None else int(max_rotations)
        if num_models is not None and (not _is_int(num_models)
                                       or not 1 <= num_models <= MAX_NUM_MODELS):
            raise ValueError(f"num_models must be None or an int in [1, {MAX_NUM_MODELS}], "
                             f"not {num_models!r}")
        self.num_models = None if num_models is None else int(num_models)

        lo, hi = self.azimuth_range
        self._azimuths = np.asarray([azimuth_index(d) for d in range(lo, hi + 1, 15)], np.int32)
        e_lo, e_hi = self.min_level, self.max_level
        self._elevations = np.arange(e_lo, e_hi + 1, dtype=np.int32)
        grid_az, grid_el = np.meshgrid(self._azimuths, self._elevations, indexing="ij")
        self._grid = np.stack([grid_az.ravel(), grid_el.ravel()], -1)  # every start pose
        if target is None:
            targets = self._grid
        else:
            targets = np.asarray([[azimuth_index(target[0]), elevation_level(target[1])]])
        rows = []
        for t in targets:
            starts = self._grid[self._allowed(self._grid, t)]
            if len(starts) == 0:
                raise ValueError(
                    f"no start pose in azimuth_range={self.azimuth_range}, elevation_range="
                    f"{self.elevation_range} is {self.min_rotations}..{self.max_rotations} "
                    f"rotations from the target (azimuth {int(t[0]) * 15}, elevation "
                    f"{int(t[1]) * 15} degrees): lower min_rotations, raise max_rotations or "
                    "widen the ranges")
            rows.append(np.concatenate([starts, np.broadcast_to(t, starts.shape)], -1))
        self._support = np.concatenate(rows).astype(np.int32)
        self._bounded = self.min_rotations > 0 or self.max_rotations is not None
        # With a fixed target the allowed starts are a static list to index.
        self._starts = self._support[:, :2] if target is not None else None

    def _allowed(self, starts: np.ndarray, target: np.ndarray) -> np.ndarray:
        d_az, d_el = host_distances(starts[:, 0], starts[:, 1], target[0], target[1])
        n = d_az + d_el
        ok = n >= self.min_rotations
        if self.max_rotations is not None:
            ok &= n <= self.max_rotations
        return ok

    def support(self) -> np.ndarray:
        return self._support

    def __call__(self, key: chex.PRNGKey) -> Scene:
        seed = seed_word(key)
        w_start, w_target, w_model = (hash_stream(seed, i) for i in range(3))
        if self.target is None:
            t_az = jnp.asarray(self._azimuths)[scale16(w_target & 0xFFFF, len(self._azimuths))]
            t_el = jnp.asarray(self._elevations)[scale16(w_target >> 16, len(self._elevations))]
        else:
            t_az = jnp.int32(azimuth_index(self.target[0]))
            t_el = jnp.int32(elevation_level(self.target[1]))
        if self._starts is not None:
            pose = jnp.asarray(self._starts)[scale16(w_start & 0xFFFF, len(self._starts))]
            az, el = pose[0], pose[1]
        elif not self._bounded:
            az = jnp.asarray(self._azimuths)[scale16(w_start & 0xFFFF, len(self._azimuths))]
            el = jnp.asarray(self._elevations)[scale16(w_start >> 16, len(self._elevations))]
        else:
            # Uniform among the grid's starts at an allowed distance from this target: each
            # gets a hashed priority and the highest allowed one wins (one argmax, no
            # cumulative count; the constructor checked that one is always allowed).
            grid = jnp.asarray(self._grid)
            d_az, d_el = distances(grid[:, 0], grid[:, 1], t_az, t_el)
            n = d_az + d_el
            ok = n >= self.min_rotations
            if self.max_rotations is not None:
                ok &= n <= self.max_rotations
            priority = hash_stream(w_start, jnp.arange(grid.shape[0])) | jnp.uint32(1)
            pose = grid[jnp.argmax(jnp.where(ok, priority, jnp.uint32(0)))]
            az, el = pose[0], pose[1]
        if self.num_models is None:
            code = shapes.make_code(w_model, self.split_index, self.styles)
        else:
            code = self.model_code(scale16(w_model >> 16, self.num_models))
        return make_scene(az, el, t_az, t_el, code)

    def __repr__(self) -> str:
        return (f"RandomGenerator(azimuth_range={self.azimuth_range}, target={self.target}, "
                f"min_rotations={self.min_rotations}, max_rotations={self.max_rotations}, "
                f"num_models={self.num_models}, {self._shape_repr()})")


class Problem(NamedTuple):
    """One fixed instance: start and target pose in degrees, and a model of the catalogue.

    ``model`` is an index into the generator's catalogue (its split, family and seed).
    """

    azimuth: int
    elevation: int
    target_azimuth: int = c.DEFAULT_TARGET[0]
    target_elevation: int = c.DEFAULT_TARGET[1]
    model: int = 0


class ProblemGenerator(CanonicalizeGenerator):
    """Draws uniformly from a fixed list of instances, e.g.
    ``ProblemGenerator([Problem(-45, 45), (30, 0, 0, 15, 3)])``.

    Args:
        problems: ``Problem`` s or tuples ``(azimuth, elevation[, target_azimuth,
            target_elevation[, model]])`` in degrees (target default (0, 15), model 0).
        elevation_range, family, split, shape_seed: as in ``CanonicalizeGenerator``; every
            problem's elevations must lie in ``elevation_range``.
    """

    def __init__(self, problems: Sequence[Union[Problem, Sequence[int]]],
                 elevation_range=c.DEFAULT_ELEVATION_RANGE, family: Family = "cars",
                 split: str = "seen", shape_seed: int = 0):
        super().__init__(elevation_range, family, split, shape_seed)
        if isinstance(problems, (str, bytes)) or not isinstance(problems, Sequence) \
                or not problems:
            raise ValueError("ProblemGenerator needs a non-empty sequence of problems")
        parsed = []
        for p in problems:
            if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) \
                    or not 2 <= len(p) <= 5 or len(p) == 3:
                raise ValueError(f"a problem is (azimuth, elevation[, target_azimuth, "
                                 f"target_elevation[, model]]), not {p!r}")
            p = Problem(*p)
            for name in ("azimuth", "elevation", "target_azimuth", "target_elevation"):
                _check_angle(f"problem {name}", getattr(p, name))
            for name in ("elevation", "target_elevation"):
                if not self.elevation_range[0] <= getattr(p, name) <= self.elevation_range[1]:
                    raise ValueError(f"problem {p}: {name} is outside elevation_range "
                                     f"{self.elevation_range}")
            if not _is_int(p.model) or not 0 <= p.model < 2**32:
                raise ValueError(f"problem {p}: model must be an int in [0, 2**32)")
            parsed.append(p)
        self.problems = parsed
        table = np.asarray([[azimuth_index(p.azimuth), elevation_level(p.elevation),
                             azimuth_index(p.target_azimuth), elevation_level(p.target_elevation)]
                            for p in parsed], np.int32)
        self._support = table
        self._poses = jnp.asarray(table)
        self._codes = jnp.asarray(np.asarray(self.model_code(
            jnp.asarray([p.model for p in parsed], jnp.uint32))))

    def support(self) -> np.ndarray:
        return self._support

    def __call__(self, key: chex.PRNGKey) -> Scene:
        i = uniform_int(seed_word(key), 0, len(self.problems) - 1)
        pose = self._poses[i]
        return make_scene(pose[0], pose[1], pose[2], pose[3], self._codes[i])

    def __repr__(self) -> str:
        shown = [tuple(p) for p in self.problems[:3]]
        more = f", ... ({len(self.problems)} problems)" if len(self.problems) > 3 else ""
        return f"ProblemGenerator({shown}{more}, {self._shape_repr()})"


def make_scene(azimuth, elevation, target_azimuth, target_elevation, code) -> Scene:
    """A scene with no moves made yet (poses as grid indices)."""
    return Scene(
        azimuth=jnp.asarray(azimuth, jnp.int32),
        elevation=jnp.asarray(elevation, jnp.int32),
        target_azimuth=jnp.asarray(target_azimuth, jnp.int32),
        target_elevation=jnp.asarray(target_elevation, jnp.int32),
        shape=jnp.asarray(code, jnp.uint32),
        moves=jnp.zeros((c.NUM_DIRECTIONS,), jnp.int32),
    )
