"""``Canonicalize-v0``: NPI's canonicalization of 3-D car models to a target viewpoint."""

from __future__ import annotations

from functools import cached_property
from typing import Mapping, Optional, Sequence, Tuple, Union

import chex
import jax.numpy as jnp
import numpy as np
from jumanji import specs

from npigym.envs.canonicalize import constants as c
from npigym.envs.canonicalize import task
from npigym.envs.canonicalize.generator import (
    CanonicalizeGenerator,
    Family,
    RandomGenerator,
)
from npigym.envs.canonicalize.programs import PROGRAMS, ROOT
from npigym.envs.canonicalize.render import render_view
from npigym.envs.canonicalize.types import FullView, LocalView, Scene, Snapshot
from npigym.envs.canonicalize.viewer import CanonicalizeViewer
from npigym.envs.machine.checks import check_time_limit
from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import ModesLike, ProgramLibrary
from npigym.envs.machine.skill import Skill
from npigym.envs.machine.types import Frame

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 256

# The generator knobs and their defaults (RandomGenerator's); ``generator=`` excludes them.
_GENERATOR_DEFAULTS = {
    "azimuth_range": c.DEFAULT_AZIMUTH_RANGE,
    "elevation_range": c.DEFAULT_ELEVATION_RANGE,
    "target": c.DEFAULT_TARGET,
    "min_rotations": 0,
    "max_rotations": None,
    "num_models": c.DEFAULT_NUM_MODELS,
    "family": "cars",
    "split": "seen",
    "shape_seed": 0,
}


def check_image_size(image_size) -> Tuple[int, int]:
    """Validate an ``image_size`` knob (an int or a (height, width) pair); returns (H, W)."""
    def ok(n) -> bool:
        return (isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                and MIN_IMAGE_SIZE <= n <= MAX_IMAGE_SIZE)

    if ok(image_size):
        return int(image_size), int(image_size)
    if isinstance(image_size, Sequence) and not isinstance(image_size, str) \
            and len(image_size) == 2 and all(ok(n) for n in image_size):
        return int(image_size[0]), int(image_size[1])
    raise ValueError(f"image_size must be an int or a (height, width) pair of ints in "
                     f"[{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], not {image_size!r}")


def _normalised(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


class Canonicalize(ProgramEnv):
    """Canonicalizing 3-D car models, as in Neural Programmer-Interpreters (Reed & de Freitas,
    2016, section 4.3): rotate the camera from the pose it starts at to a target pose.

    A procedurally generated car (``shapes``: body, cabin, wheels, lights, sometimes a
    spoiler; four body styles; per-model dimensions and paint) is rendered in JAX inside every
    step (``render``: orthographic ray casting with a depth test and Lambert shading), as NPI's
    CAD renders were. The agent sees the image and the target pose, never the current pose, and
    calls programs:

    - the primitive ``ACT(dir)``, dir in ``LEFT, RIGHT, UP, DOWN``: orbit the camera 15 degrees
      (NPI's ACT, its argument selecting the direction; LEFT / RIGHT turn the azimuth by -15 /
      +15 degrees, UP / DOWN the elevation by +15 / -15). Azimuth wraps around (24 values);
      elevation is bounded by ``elevation_range``: rotating past it is an invalid no-op;
    - ``GOTO`` (the root) -> ``HGOTO``, ``VGOTO``; ``HGOTO`` -> ``LGOTO``, ``RGOTO``;
      ``VGOTO`` -> ``UGOTO``, ``DGOTO``; ``L/R/U/DGOTO`` -> ``ACT``;
    - ``RETURN``, which ends the current program.

    The expert (``expert_action``, NPI's trace) calls HGOTO then VGOTO; HGOTO calls RGOTO or
    LGOTO, whichever is the shorter way round (a half turn goes right), or returns at once when
    the azimuth is already right; LGOTO calls ACT(LEFT) until the azimuth is the target's;
    VGOTO, UGOTO, DGOTO likewise. It solves every instance. Postconditions (reported in
    ``extras["postcondition"]`` on RETURN): GOTO: the pose is the target; HGOTO: the azimuth is
    the target's and the elevation unchanged; VGOTO: the converse; LGOTO / RGOTO / UGOTO /
    DGOTO: the azimuth / elevation is the target's, reached moving only their own way (and
    less than a full turn).

    The models come from a seeded catalogue of ``num_models`` per split; ``split="unseen"``
    draws held-out models whose parameter vectors never occur in the seen split (``shapes``).

    - observation: ``Observation`` (see ``npigym.envs.machine``):
        - program, args, depth: the frame being executed;
        - action_mask: (9,) bool, the programs it may call;
        - local: ``LocalView``: image (H, W) float32 in [0, 1] (background 0), and the target's
          azimuth (24,) and elevation (7,) as float32 one-hots (azimuth index ``a`` is
          ``15 a`` degrees, 0 looking at the car's front, growing as the camera orbits to its
          right; elevation index ``i`` is ``15 i`` degrees, 0 to 90);
        - full: with ``observation="full"``, ``FullView``: the current azimuth and elevation as
          one-hots of the same layout.
    - action: ``(program, arg0, arg1, arg2)`` in ``[9, 4, 1, 1]``; ACT reads its direction
      from arg0. Invalid actions (masked program, ACT past the elevation bounds) are no-ops
      costing ``invalid_action_penalty``.
    - reward: ``"sparse"``: 1 when GOTO returns at the target pose. ``"dense"``: also, each
      step, the reduction of the distance to the target (azimuth the shorter way round plus
      elevation, in 15-degree steps) divided by the largest distance possible in the env,
      ``12 + (elevation levels - 1)``.
    - episode end: ``termination`` when GOTO (the root) returns, at the target or not;
      ``truncation`` at the step limit (default: twice the expert's worst case over the
      generator's instances; the expert takes ``d_az + d_el + 5 + 2 [d_az > 0] + 2 [d_el > 0]``
      steps: 34 for the paper's distribution, 48 with ``azimuth_range=(-180, 165)``).

    Args:
        image_size: side of the square image, or (height, width); 8 to 256 (default 32).
        azimuth_range: (low, high) degrees of the start azimuth, default (-75, 75) as in the
            paper; may wrap, e.g. (-180, 165) for the full circle.
        elevation_range: (low, high) degrees of the start elevation and the camera's bounds,
            default (0, 60); multiples of 15 in [0, 90].
        target: (azimuth, elevation) degrees, default (0, 15) as in the paper; ``None`` draws
            a random target from the ranges each episode.
        min_rotations, max_rotations: bounds on the ACTs the expert needs (default 0 and no
            bound); the paper's Table 1 evaluates trajectories of at most 4. The CLI's
            ``--size N`` sets both (trajectories of exactly N rotations).
        num_models: models per split's catalogue (default 64), ``None`` for a fresh model
            every episode.
        family: ``"cars"`` (default: sedan, suv, pickup, sports), one style, or a sequence.
        split: ``"seen"`` (default) or ``"unseen"``: held-out models whose parameters never
            occur in the seen split (NPI reports accuracy on seen and unseen car models).
        shape_seed: selects the catalogues of models.
        generator: a ``CanonicalizeGenerator`` (``RandomGenerator``, ``ProblemGenerator`` or
            your own) instead of the knobs above (from azimuth_range to shape_seed).
        reward: ``"sparse"`` or ``"dense"``.
        modes: ``"hierarchical"`` (default: the agent executes every program), ``"macro"``
            (HGOTO and VGOTO run as builtin macro actions), ``"flat"`` (GOTO calls ACT only),
            or a dict such as ``{"LGOTO": "builtin"}``.
        observation: ``"local"`` or ``"full"`` (adds the current pose).
        time_limit: fixed step limit instead of the default.
        invalid_action_penalty: subtracted from the reward of an invalid action.
        render_mode: default of ``render``: ``"ansi"``, ``"rgb_array"`` or ``"human"``.
        viewer: a ``CanonicalizeViewer`` (or another ``ProgramViewer``).
        skills: ``{program: Skill}``: trained policies run as those programs (``skill``
            mode, ``npigym.envs.machine.skill``); ``npigym.make`` also takes skill names.

    ```python
    import jax
    import npigym

    env = npigym.make("Canonicalize-v0", image_size=32)
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    states = [state]
    while not timestep.last():
        state, timestep = step(state, env.expert_action(state))
        states.append(state)
    print(env.render(state), timestep.extras["success"])
    timestep.observation.local.image.shape  # (32, 32)
    env.animate(states, "canonicalize.gif")
    ```
    """

    size_knobs = ("min_rotations", "max_rotations")

    def __init__(
        self,
        image_size: Union[int, Tuple[int, int]] = c.DEFAULT_IMAGE_SIZE,
        azimuth_range: Tuple[int, int] = c.DEFAULT_AZIMUTH_RANGE,
        elevation_range: Tuple[int, int] = c.DEFAULT_ELEVATION_RANGE,
        target: Optional[Tuple[int, int]] = c.DEFAULT_TARGET,
        min_rotations: int = 0,
        max_rotations: Optional[int] = None,
        num_models: Optional[int] = c.DEFAULT_NUM_MODELS,
        family: Family = "cars",
        split: str = "seen",
        shape_seed: int = 0,
        generator: Optional[CanonicalizeGenerator] = None,
        reward: str = "sparse",
        modes: ModesLike = None,
        observation: str = "local",
        time_limit: Optional[int] = None,
        invalid_action_penalty: float = 0.0,
        render_mode: str = "ansi",
        viewer: Optional[CanonicalizeViewer] = None,
        skills: Optional[Mapping[str, Skill]] = None,
    ):
        knobs = {"azimuth_range": azimuth_range, "elevation_range": elevation_range,
                 "target": target, "min_rotations": min_rotations,
                 "max_rotations": max_rotations, "num_models": num_models, "family": family,
                 "split": split, "shape_seed": shape_seed}
        if generator is None:
            generator = RandomGenerator(**knobs)
        else:
            changed = [k for k, v in knobs.items()
                       if _normalised(v) != _normalised(_GENERATOR_DEFAULTS[k])]
            if changed:
                raise ValueError(f"pass either generator knobs or a generator, not both: "
                                 f"{generator!r} sets {', '.join(changed)}")
        if not isinstance(generator, CanonicalizeGenerator):
            raise TypeError("generator must be a CanonicalizeGenerator, "
                            f"not {type(generator).__name__}")
        self.image_shape = check_image_size(image_size)
        self.min_level, self.max_level = generator.min_level, generator.max_level
        self.max_distance = c.HALF_TURN + (self.max_level - self.min_level)
        support = generator.support()
        d_az, d_el = task.host_distances(*support.T)
        self.expert_worst_case = int(task.expert_steps(d_az, d_el).max())
        time_limit = check_time_limit(time_limit)
        library = ProgramLibrary(PROGRAMS, ROOT, modes)
        super().__init__(
            library, generator, reward=reward, observation=observation, time_limit=time_limit,
            invalid_action_penalty=invalid_action_penalty, render_mode=render_mode,
            viewer=viewer or CanonicalizeViewer(library, self.image_shape,
                                                generator.elevation_range),
            skills=skills)

    # The four task functions (pure, in task.py).
    def apply_primitive(self, scene: Scene, program: chex.Array, args: chex.Array):
        return task.apply_primitive(scene, program, args, self.min_level, self.max_level)

    def expert_call(self, scene: Scene, frame: Frame) -> chex.Array:
        return task.expert_call(scene, frame)

    def postcondition(self, scene: Scene, frame: Frame) -> chex.Array:
        return task.postcondition(scene, frame)

    def local_view(self, scene: Scene) -> LocalView:
        return LocalView(image=self.render_image(scene),
                         target_azimuth=task.azimuth_one_hot(scene.target_azimuth),
                         target_elevation=task.elevation_one_hot(scene.target_elevation))

    def render_image(self, scene: Scene) -> chex.Array:
        """(H, W) float32: the model seen from the scene's current pose (pure JAX)."""
        height, width = self.image_shape
        return render_view(scene.shape, scene.azimuth, scene.elevation, height, width)

    # Views, snapshot, dense reward and step budget.
    @cached_property
    def local_view_spec(self) -> specs.Spec:
        return specs.Spec(
            LocalView, "local",
            image=specs.BoundedArray(self.image_shape, jnp.float32, 0.0, 1.0, "image"),
            target_azimuth=specs.BoundedArray((c.NUM_AZIMUTHS,), jnp.float32, 0.0, 1.0,
                                              "target_azimuth"),
            target_elevation=specs.BoundedArray((c.NUM_ELEVATIONS,), jnp.float32, 0.0, 1.0,
                                                "target_elevation"))

    def full_view(self, scene: Scene) -> FullView:
        return FullView(azimuth=task.azimuth_one_hot(scene.azimuth),
                        elevation=task.elevation_one_hot(scene.elevation))

    @cached_property
    def full_view_spec(self) -> specs.Spec:
        return specs.Spec(
            FullView, "full",
            azimuth=specs.BoundedArray((c.NUM_AZIMUTHS,), jnp.float32, 0.0, 1.0, "azimuth"),
            elevation=specs.BoundedArray((c.NUM_ELEVATIONS,), jnp.float32, 0.0, 1.0,
                                         "elevation"))

    def snapshot(self, scene: Scene) -> Snapshot:
        return task.snapshot(scene)

    def progress(self, scene: Scene) -> chex.Array:
        return task.progress(scene, self.max_distance)

    def default_step_limit(self, scene: Scene) -> chex.Array:
        """Twice the expert's worst case over the generator's instances (the same for all)."""
        return jnp.asarray(2 * self.expert_worst_case, jnp.int32)

    def __repr__(self) -> str:
        return (f"Canonicalize(image_size={self.image_shape}, generator={self.generator!r}, "
                f"{super().__repr__().split('(', 1)[1]}")
