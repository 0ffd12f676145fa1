"""The canonicalization task's functions: ACT, expert, postconditions, distances.

All are pure functions of one (unbatched) scene; the machine vmaps them. Poses are grid
indices (``constants``): azimuth 0..23 wraps around, elevation is bounded by the env.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

from npigym.envs.canonicalize import constants as c
from npigym.envs.canonicalize.types import Scene, Snapshot
from npigym.envs.machine.types import Frame


def wrap_azimuth(a: chex.Array) -> chex.Array:
    """An azimuth index in ``[-24, 47]`` brought to ``[0, 23]`` (selects, no integer modulo)."""
    a = jnp.where(a < 0, a + c.NUM_AZIMUTHS, a)
    return jnp.where(a >= c.NUM_AZIMUTHS, a - c.NUM_AZIMUTHS, a)


def azimuth_offset(azimuth: chex.Array, target: chex.Array) -> chex.Array:
    """Steps to the right (0..23) that take ``azimuth`` to ``target``."""
    return wrap_azimuth(jnp.asarray(target) - jnp.asarray(azimuth))


def distances(azimuth, elevation, target_azimuth, target_elevation):
    """(azimuth steps the shorter way round, elevation steps) between two poses (0..12 each)."""
    offset = azimuth_offset(azimuth, target_azimuth)
    return (jnp.minimum(offset, c.NUM_AZIMUTHS - offset),
            jnp.abs(jnp.asarray(target_elevation) - jnp.asarray(elevation)))


def host_distances(azimuth, elevation, target_azimuth, target_elevation):
    """``distances`` in numpy, for host-side bookkeeping (no tracing or dispatch)."""
    offset = np.mod(np.asarray(target_azimuth) - np.asarray(azimuth), c.NUM_AZIMUTHS)
    return (np.minimum(offset, c.NUM_AZIMUTHS - offset),
            np.abs(np.asarray(target_elevation) - np.asarray(elevation)))


def expert_steps(d_azimuth, d_elevation):
    """Agent steps the hierarchical expert takes for pose distances (numpy or JAX).

    GOTO calls HGOTO and VGOTO and returns (3 steps). HGOTO returns at once when aligned (1)
    or calls LGOTO / RGOTO and returns (2) around ``d`` ACTs and the callee's RETURN; VGOTO
    likewise. So ``d_az + d_el + 5 + 2 [d_az > 0] + 2 [d_el > 0]``, at most ``d_az + d_el + 9``.
    """
    d_azimuth, d_elevation = np.asarray(d_azimuth), np.asarray(d_elevation)
    return (d_azimuth + d_elevation + 5 + 2 * (d_azimuth > 0).astype(np.int64)
            + 2 * (d_elevation > 0).astype(np.int64))


def apply_primitive(scene: Scene, program: chex.Array, args: chex.Array, min_level: int,
                    max_level: int) -> tuple[Scene, chex.Array]:
    """ACT(dir): orbit the camera 15 degrees. Invalid: raising or lowering it past the
    elevation bounds ``[min_level, max_level]`` (azimuth wraps around, always valid)."""
    chex.assert_shape(args, (3,))
    direction = args[0]
    d_azimuth = jnp.where(direction == c.LEFT, -1, jnp.where(direction == c.RIGHT, 1, 0))
    d_elevation = jnp.where(direction == c.UP, 1, jnp.where(direction == c.DOWN, -1, 0))
    elevation = scene.elevation + d_elevation
    ok = (program == c.ACT) & (direction >= 0) & (direction < c.NUM_DIRECTIONS)
    ok &= (elevation >= min_level) & (elevation <= max_level)
    moved = scene.replace(
        azimuth=wrap_azimuth(scene.azimuth + d_azimuth),
        elevation=elevation,
        moves=scene.moves + (jnp.arange(c.NUM_DIRECTIONS) == direction).astype(jnp.int32))
    return moved, ok


def expert_call(scene: Scene, frame: Frame) -> chex.Array:
    """NPI's canonicalization trace, one call per frame step.

    GOTO calls HGOTO then VGOTO, then returns. HGOTO returns at once when the azimuth is the
    target's; otherwise it calls RGOTO when the target is 15..180 degrees to the right (the
    shorter way; a half turn goes right), else LGOTO, then returns. VGOTO calls UGOTO or DGOTO
    likewise. LGOTO / RGOTO call ACT(LEFT) / ACT(RIGHT) until the azimuth is the target's;
    UGOTO / DGOTO call ACT(UP) / ACT(DOWN) while the target is above / below (so they return
    even when called the wrong way, e.g. as a builtin), then return.
    """
    k = frame.steps
    offset = azimuth_offset(scene.azimuth, scene.target_azimuth)
    below = scene.elevation < scene.target_elevation  # the camera must go up
    above = scene.elevation > scene.target_elevation

    def call(program, arg=0):
        return jnp.stack([jnp.asarray(program), jnp.asarray(arg), jnp.asarray(0),
                          jnp.asarray(0)]).astype(jnp.int32)

    ret = call(c.RETURN)
    goto = jnp.where(k == 0, call(c.HGOTO), jnp.where(k == 1, call(c.VGOTO), ret))
    sideways = jnp.where(offset <= c.HALF_TURN, call(c.RGOTO), call(c.LGOTO))
    hgoto = jnp.where((k == 0) & (offset != 0), sideways, ret)
    vertical = jnp.where(below, call(c.UGOTO), call(c.DGOTO))
    vgoto = jnp.where((k == 0) & (below | above), vertical, ret)
    lgoto = jnp.where(offset != 0, call(c.ACT, c.LEFT), ret)
    rgoto = jnp.where(offset != 0, call(c.ACT, c.RIGHT), ret)
    ugoto = jnp.where(below, call(c.ACT, c.UP), ret)
    dgoto = jnp.where(above, call(c.ACT, c.DOWN), ret)
    # Rows indexed by program id; RETURN and ACT never own a frame.
    table = jnp.stack([ret, ret, goto, hgoto, vgoto, lgoto, rgoto, ugoto, dgoto])
    return table[frame.program]


def postcondition(scene: Scene, frame: Frame) -> chex.Array:
    """Whether ``frame``'s program did its job.

    GOTO: the pose is the target. HGOTO: the azimuth is the target's, the elevation unchanged.
    VGOTO: the elevation is the target's, the azimuth unchanged. LGOTO / RGOTO / UGOTO / DGOTO:
    the azimuth / elevation is the target's, reached by moving only their own way and (for
    azimuth) in less than a full turn.
    """
    snap: Snapshot = frame.snapshot
    at_azimuth = scene.azimuth == scene.target_azimuth
    at_elevation = scene.elevation == scene.target_elevation
    same_azimuth = scene.azimuth == snap.azimuth
    same_elevation = scene.elevation == snap.elevation
    moved = scene.moves - snap.moves

    def only(direction, count):
        own = jnp.arange(c.NUM_DIRECTIONS) == direction
        return jnp.all(jnp.where(own, moved == count, moved == 0))

    goto = at_azimuth & at_elevation
    hgoto = at_azimuth & same_elevation
    vgoto = at_elevation & same_azimuth
    lgoto = at_azimuth & only(c.LEFT, azimuth_offset(scene.target_azimuth, snap.azimuth))
    rgoto = at_azimuth & only(c.RIGHT, azimuth_offset(snap.azimuth, scene.target_azimuth))
    ugoto = at_elevation & only(c.UP, scene.target_elevation - snap.elevation)
    dgoto = at_elevation & only(c.DOWN, snap.elevation - scene.target_elevation)
    false = jnp.zeros((), bool)
    table = jnp.stack([false, false, goto, hgoto, vgoto, lgoto, rgoto, ugoto, dgoto])
    return table[frame.program]


def snapshot(scene: Scene) -> Snapshot:
    return Snapshot(azimuth=scene.azimuth, elevation=scene.elevation, moves=scene.moves)


def progress(scene: Scene, max_distance: int) -> chex.Array:
    """1 at the target, falling by ``1 / max_distance`` per 15 degrees of (shorter-way)
    azimuth or elevation away from it; ``max_distance`` is the env's largest possible."""
    d_azimuth, d_elevation = distances(scene.azimuth, scene.elevation, scene.target_azimuth,
                                       scene.target_elevation)
    return 1.0 - (d_azimuth + d_elevation).astype(jnp.float32) / max_distance


def one_hot(index: chex.Array, size: int) -> chex.Array:
    return (jnp.arange(size) == index).astype(jnp.float32)


def azimuth_one_hot(azimuth: chex.Array) -> chex.Array:
    return one_hot(azimuth, c.NUM_AZIMUTHS)


def elevation_one_hot(elevation: chex.Array) -> chex.Array:
    return one_hot(elevation - c.MIN_ELEVATION_LEVEL, c.NUM_ELEVATIONS)
