"""``KthLargest-v0``: KTH = BUBBLESORT then KJMP, a program added on top of the sorting core."""

from __future__ import annotations

from functools import cached_property
from typing import Mapping, Optional

import chex
import jax.numpy as jnp
from jumanji import specs

from npigym.envs.kth_largest import constants as c
from npigym.envs.kth_largest import task
from npigym.envs.kth_largest.generator import make_generator
from npigym.envs.kth_largest.programs import PROGRAMS, ROOT, SKILL_MODES
from npigym.envs.kth_largest.types import FullView, KthPad
from npigym.envs.kth_largest.viewer import KthLargestViewer
from npigym.envs.machine.checks import check_step_limit, check_time_limit
from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import ModesLike, ProgramLibrary
from npigym.envs.machine.skill import Skill
from npigym.envs.machine.types import Frame
from npigym.envs.machine.viewer import ProgramViewer
from npigym.envs.sorting import task as sorting_task
from npigym.envs.sorting.env import Sorting
from npigym.envs.sorting.generator import SortingGenerator
from npigym.envs.sorting.types import Snapshot


class KthLargest(ProgramEnv):
    """The k-th largest value of an array, by a program added on top of a core that sorts.

    An array as :class:`~npigym.envs.sorting.Sorting`'s (``length`` values in
    ``[0, max_value]``, duplicates allowed, three pointers on the first cell) comes with a
    rank ``k`` in ``[1, length]``; the agent must end with pointers 1 and 2 on the cell
    ``length - k`` holding the k-th largest value. The library is Sorting's (same program
    ids, a prefix, so a BUBBLESORT policy trained on ``Sorting-v0`` binds here as a skill)
    and two new programs:

    - ``KTH`` (the root) -> ``BUBBLESORT``, ``KJMP``; ``KJMP`` -> ``RSHIFT``, ``LSHIFT``.
    - The expert calls BUBBLESORT (which leaves pointers 1 and 2 on the first cell), then
      KJMP, which RSHIFTs until pointers 1 and 2 are on cell ``length - k``.

    By default the core's programs that the new ones call, BUBBLESORT, RSHIFT and LSHIFT, are
    ``builtin`` (learned skills run as macro actions) and the agent executes KTH and KJMP, as
    in ``Max-v0``; ``modes="hierarchical"`` has the agent execute everything, ``"macro"``
    makes BUBBLESORT and KJMP builtin, ``"flat"`` has KTH call primitives only.
    ``skills={"BUBBLESORT": skill}`` runs a trained Sorting policy for BUBBLESORT: it sees
    the array and pointers as they are (``k`` is this task's, hidden from it).

    Unlike :class:`~npigym.envs.sorting.Max` this is a task family of its own (a
    ``ProgramEnv``, not a ``Sorting`` subclass, reusing Sorting's task functions): its local
    view has two more features, so an NPI model gives it an encoder of its own, while its
    program memory shares Sorting's programs by name.

    - observation: ``Observation`` (see ``npigym.envs.machine``):
        - program, args, depth: the frame being executed;
        - action_mask: (12,) bool, the programs it may call;
        - local: (10,) int32: Sorting's 8 features (the values under pointers 1 and 2, then
          ``at_start, at_end`` of pointers 1, 2 and 3), then where pointers 1 and 2 are
          relative to cell ``length - k``: 0 left of it, 1 on it, 2 right of it (what KJMP
          needs to know which way to shift and when to stop, whatever the length);
        - full: with ``observation="full"``, ``FullView(cells, length, pointers, k ()
          int32)``.
    - action: ``(program, arg0, arg1, arg2)`` in ``[12, 3, 2, 1]``; invalid actions as in
      :class:`Sorting`.
    - reward: ``"sparse"``: 1 when KTH returns with pointers 1 and 2 on cell ``length - k``,
      which holds the k-th largest value (fewer than k values larger, at least k at least as
      large), and the array a permutation of the original. ``"dense"``: also the normalised
      inversions removed, as :class:`Sorting` (KTH's expert sorts).
    - episode end: ``termination`` when KTH returns; ``truncation`` at the step limit
      (default twice the hierarchical expert's worst case for the length and k: Sorting's
      plus ``4 (length - k) + 4``).

    Args:
        min_length, max_length, max_value, generator: the arrays, as :class:`Sorting`'s
            (``generator`` may also be a ``KthGenerator``, which brings its own k).
        k: ``None`` (default): uniform in ``[1, length]`` per instance; an int: that rank
            always, in ``[1, min_length]`` (the shortest array's length).
        reward, observation, time_limit, invalid_action_penalty, render_mode, skills: as
            :class:`Sorting`.
        modes: ``None`` (the default posing above), ``"hierarchical"``, ``"macro"``,
            ``"flat"``, or a dict such as ``{"KJMP": "builtin"}``.
        viewer: a ``KthLargestViewer`` (default) or another ``ProgramViewer``.

    ```python
    import jax
    import npigym

    env = npigym.make("KthLargest-v0", max_length=6)
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step, expert = jax.jit(env.step), jax.jit(env.expert_action)
    while not timestep.last():
        state, timestep = step(state, expert(state))
    print(env.render(state), timestep.extras["success"])
    ```
    """

    size_knobs = ("min_length", "max_length")

    def __init__(
        self,
        min_length: Optional[int] = None,
        max_length: Optional[int] = None,
        max_value: Optional[int] = None,
        k: Optional[int] = None,
        generator: Optional[SortingGenerator] = None,
        reward: str = "sparse",
        modes: ModesLike = None,
        observation: str = "local",
        time_limit: Optional[int] = None,
        invalid_action_penalty: float = 0.0,
        render_mode: str = "ansi",
        viewer: Optional[ProgramViewer] = None,
        skills: Optional[Mapping[str, Skill]] = None,
    ):
        generator = make_generator(min_length, max_length, max_value, k, generator)
        n = generator.max_length
        # Sorting's worst case plus KJMP's 4 (n - k) + 4 at k = 1.
        check_step_limit("max_length", Sorting.worst_case_step_limit(n) + 2 * (4 * (n - 1) + 4),
                         f"a reversed array of {n:,} values")
        time_limit = check_time_limit(time_limit)
        library = ProgramLibrary(PROGRAMS, ROOT, SKILL_MODES if modes is None else modes)
        self.k = generator.k
        self.max_length = generator.max_length
        self.max_value = generator.max_value
        super().__init__(
            library, generator, reward=reward, observation=observation, time_limit=time_limit,
            invalid_action_penalty=invalid_action_penalty, render_mode=render_mode,
            viewer=viewer or KthLargestViewer(library), skills=skills)

    # The four task functions: Sorting's primitives as they are, the rest in task.py.
    def apply_primitive(self, pad: KthPad, program: chex.Array, args: chex.Array):
        return sorting_task.apply_primitive(pad, program, args,
                                            track_inversions=self.reward_type == "dense")

    def expert_call(self, pad: KthPad, frame: Frame) -> chex.Array:
        return task.expert_call(pad, frame)

    def postcondition(self, pad: KthPad, frame: Frame) -> chex.Array:
        return task.postcondition(pad, frame)

    def local_view(self, pad: KthPad) -> chex.Array:
        return task.local_view(pad)

    # Views, snapshot, skills, dense reward and step budget.
    @cached_property
    def local_view_spec(self) -> specs.MultiDiscreteArray:
        values = self.max_value + 1
        return specs.MultiDiscreteArray(
            num_values=jnp.asarray([values, values] + [2] * (2 * c.NUM_POINTERS)
                                   + [c.NUM_TARGET_SIDES] * 2, jnp.int32),
            name="local")

    def full_view(self, pad: KthPad) -> FullView:
        return task.full_view(pad)

    @cached_property
    def full_view_spec(self) -> specs.Spec:
        return specs.Spec(
            FullView, "full",
            cells=specs.BoundedArray((self.max_length,), self.generator.dtype, 0,
                                     self.max_value + 1, "cells"),
            length=specs.BoundedArray((), jnp.int32, 1, self.max_length, "length"),
            pointers=specs.BoundedArray((c.NUM_POINTERS,), jnp.int32, 0, self.max_length - 1,
                                        "pointers"),
            k=specs.BoundedArray((), jnp.int32, 1, self.max_length, "k"))

    def snapshot(self, pad: KthPad) -> Snapshot:
        return sorting_task.snapshot(pad)

    def skill_view(self, program: str):
        """A skill bound to a sorting program sees the pad without k; its result keeps k."""
        del program
        return task.project, task.embed

    def progress(self, pad: KthPad) -> chex.Array:
        return sorting_task.progress(pad)

    def default_step_limit(self, pad: KthPad) -> chex.Array:
        return task.default_step_limit(pad)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(generator={self.generator!r}, "
                f"{super().__repr__().split('(', 1)[1]}")
