"""Types of the canonicalization task's state and views."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import chex

if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import dataclass
else:
    from chex import dataclass


@dataclass
class Scene:
    """The canonicalization task's part of the machine state.

    Poses are grid indices: azimuth 0..23 (15-degree steps, wrapping), elevation 0..6
    (15-degree steps, within the env's bounds).

    Attributes:
        azimuth, elevation: () int32, the camera's current pose (never observed by the agent,
            except with ``observation="full"``).
        target_azimuth, target_elevation: () int32, the pose to bring the camera to.
        shape: () uint32, the model's shape code (``shapes`` module).
        moves: (4,) int32, successful ACT calls so far in each direction (LEFT, RIGHT, UP,
            DOWN); the postconditions of LGOTO etc. check which way the camera moved.
    """

    azimuth: chex.Array
    elevation: chex.Array
    target_azimuth: chex.Array
    target_elevation: chex.Array
    shape: chex.Array
    moves: chex.Array


class Snapshot(NamedTuple):
    """What the postconditions need of the scene when a program was called."""

    azimuth: chex.Array  # () int32
    elevation: chex.Array  # () int32
    moves: chex.Array  # (4,) int32


class LocalView(NamedTuple):
    """NPI's view of the task: the current image and the target pose (not the current pose).

    Attributes:
        image: (H, W) float32 in [0, 1], the model rendered from the current pose.
        target_azimuth: (24,) float32 one-hot, index ``a`` is ``15 * a`` degrees.
        target_elevation: (7,) float32 one-hot, index ``i`` is ``15 * i`` degrees (0 to 90).
    """

    image: chex.Array
    target_azimuth: chex.Array
    target_elevation: chex.Array


class FullView(NamedTuple):
    """The current pose, which the agent must otherwise infer from the image
    (``observation="full"``); same one-hot layout as the target's."""

    azimuth: chex.Array  # (24,) float32
    elevation: chex.Array  # (7,) float32
