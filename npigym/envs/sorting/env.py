"""``Sorting-v0`` (NPI's bubble sort) and ``Max-v0`` (MAX = BUBBLESORT then RJMP)."""

from __future__ import annotations

from functools import cached_property
from typing import Mapping, Optional

import chex
import jax.numpy as jnp
from jumanji import specs

from npigym.envs.machine.checks import check_step_limit, check_time_limit, is_int
from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import ModesLike, ProgramLibrary
from npigym.envs.machine.skill import Skill
from npigym.envs.machine.types import Frame
from npigym.envs.sorting import constants as c
from npigym.envs.sorting import task
from npigym.envs.sorting.generator import RandomGenerator, SortingGenerator
from npigym.envs.sorting.programs import (
    MAX_PROGRAMS,
    MAX_ROOT,
    MAX_SKILL_MODES,
    PROGRAMS,
    ROOT,
)
from npigym.envs.sorting.types import FullView, Snapshot, SortPad
from npigym.envs.sorting.viewer import SortingViewer


class Sorting(ProgramEnv):
    """Bubble sort as in Neural Programmer-Interpreters (Reed & de Freitas, 2016).

    An array of ``length`` values in ``[0, max_value]`` (duplicates allowed) fills the start of
    a row of ``max_length`` cells; the rest is blank. Pointers 1 and 2 are the bubble pointers
    (the agent sees the values under them; SWAP exchanges them) and pointer 3 counts passes;
    all three start on the first cell and never leave the array. The agent sorts the array in
    place by calling programs:

    - primitives ``MOVE_PTR(P1|P2|P3, LEFT|RIGHT)`` and ``SWAP`` (NPI's ACT);
    - ``BUBBLESORT`` (the root) -> ``BUBBLE``, ``RESET``, MOVE_PTR; ``BUBBLE`` -> MOVE_PTR,
      ``BSTEP``; ``BSTEP`` -> ``COMPSWAP``, ``RSHIFT``; ``COMPSWAP`` -> SWAP; ``RESET`` ->
      ``LSHIFT``; ``LSHIFT`` / ``RSHIFT`` -> MOVE_PTR;
    - ``RETURN``, which ends the current program.

    The expert follows Cai et al.'s trace (2017, Fig. 2): per pass, ``BUBBLE`` (PTR 2 RIGHT,
    then ``length - 1`` BSTEPs), ``RESET`` (``length - 1`` LSHIFTs), then BUBBLESORT itself
    issues ``PTR 3 RIGHT`` (the paper's "after every call to RESET"), until pointer 3 reaches
    the last cell. Shifts move only the pointers that can move, so a pass ends with pointers 1
    and 2 both on the last cell.

    - observation: ``Observation`` (see ``npigym.envs.machine``):
        - program, args, depth: the frame being executed;
        - action_mask: (10,) bool, the programs it may call;
        - local: (8,) int32, NPI's encoder input: the values under pointers 1 and 2 (in
          ``[0, max_value]``), then ``at_start, at_end`` flags of pointers 1, 2 and 3;
        - full: with ``observation="full"``, ``FullView(cells (max_length,) int8 (0 blank,
          v + 1 for value v; int16 / int32 for large ``max_value``), length () int32,
          pointers (3,) int32)``.
    - action: ``(program, arg0, arg1, arg2)`` in ``[10, 3, 2, 1]``; MOVE_PTR reads (ptr, dir).
      Invalid actions (a masked program, a move off the array, SWAP with pointers 1 and 2 on
      one cell, moving pointer 3 right onto cell ``k`` while the last ``k`` cells are not yet
      settled, so that it counts only passes made) are no-ops costing
      ``invalid_action_penalty``.
    - reward: ``"sparse"``: 1 when BUBBLESORT returns with the array sorted (and a permutation
      of the original) and pointer 3 on the last cell (all passes counted, as in NPI's
      trace). ``"dense"``: also, each step, the inversions it removed over
      ``length * (length - 1) / 2`` (SWAP updates the count: O(length) per step, none at
      reset), so a sorted episode sums to the instance's inversions over that maximum.
    - episode end: ``termination`` when BUBBLESORT (the root) returns, sorted or not;
      ``truncation`` at the step limit (default: twice the expert's worst case, a reversed
      array: ``2 * (12 m^2 + 5 m + 1 + m (m + 1) / 2)`` with ``m = length - 1``).
    - extras: ``returned_program`` and ``postcondition`` on every RETURN (each program's
      postcondition is in ``task.postcondition``), ``success``, ``invalid_action``,
      ``primitive_steps``.

    Args:
        min_length, max_length: array lengths (default 2, or ``max_length`` if smaller, and 10;
            NPI trained on 2-20). The row has ``max_length`` cells, at most 8192. Give these
            and ``max_value`` or ``generator``, not both.
        max_value: values are in ``[0, max_value]`` (default 9, digits; at most 65535).
        generator: a ``SortingGenerator`` (``RandomGenerator``, ``ArrayGenerator`` or your own).
        reward: ``"sparse"`` or ``"dense"``.
        modes: ``"hierarchical"`` (default: the agent executes every program), ``"macro"``
            (BUBBLE and RESET run as builtin macro actions), ``"flat"`` (BUBBLESORT calls
            MOVE_PTR and SWAP only), or a dict such as ``{"COMPSWAP": "builtin"}``.
        observation: ``"local"`` or ``"full"`` (adds the whole array and the pointers).
        time_limit: fixed step limit instead of the per-instance default.
        invalid_action_penalty: subtracted from the reward of an invalid action.
        render_mode: default of ``render``: ``"ansi"``, ``"rgb_array"`` or ``"human"``.
        viewer: a ``SortingViewer`` (or another ``ProgramViewer``).
        skills: ``{program: Skill}``: trained policies run as those programs (``skill``
            mode, ``npigym.envs.machine.skill``); ``npigym.make`` also takes skill names.

    ```python
    import jax
    import npigym

    env = npigym.make("Sorting-v0", max_length=6)
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step, expert = jax.jit(env.step), jax.jit(env.expert_action)
    while not timestep.last():
        state, timestep = step(state, expert(state))
    print(env.render(state), timestep.extras["success"])
    ```
    """

    size_knobs = ("min_length", "max_length")
    _programs = PROGRAMS
    _root = ROOT
    _default_modes: ModesLike = None
    _num_programs = c.NUM_SORTING_PROGRAMS

    def __init__(
        self,
        min_length: Optional[int] = None,
        max_length: Optional[int] = None,
        max_value: Optional[int] = None,
        generator: Optional[SortingGenerator] = None,
        reward: str = "sparse",
        modes: ModesLike = None,
        observation: str = "local",
        time_limit: Optional[int] = None,
        invalid_action_penalty: float = 0.0,
        render_mode: str = "ansi",
        viewer: Optional[SortingViewer] = None,
        skills: Optional[Mapping[str, Skill]] = None,
    ):
        if generator is None:
            max_length = c.DEFAULT_MAX_LENGTH if max_length is None else max_length
            if min_length is None:  # the default, unless max_length asks for shorter arrays
                min_length = c.DEFAULT_MIN_LENGTH
                if is_int(max_length) and 1 <= max_length < min_length:
                    min_length = max_length
            generator = RandomGenerator(
                min_length, max_length, c.DEFAULT_MAX_VALUE if max_value is None else max_value)
        elif min_length is not None or max_length is not None or max_value is not None:
            raise ValueError("pass either min_length/max_length/max_value or a generator, not "
                             f"both (the generator {generator!r} sets them)")
        if not isinstance(generator, SortingGenerator):
            raise TypeError("generator must be a SortingGenerator, "
                            f"not {type(generator).__name__}")
        check_step_limit("max_length", self.worst_case_step_limit(generator.max_length),
                         f"a reversed array of {generator.max_length:,} values")
        time_limit = check_time_limit(time_limit)
        library = ProgramLibrary(self._programs, self._root,
                                 self._default_modes if modes is None else modes)
        self.max_length = generator.max_length
        self.max_value = generator.max_value
        super().__init__(
            library, generator, reward=reward, observation=observation, time_limit=time_limit,
            invalid_action_penalty=invalid_action_penalty, render_mode=render_mode,
            viewer=viewer or SortingViewer(library), skills=skills)

    @staticmethod
    def worst_case_step_limit(length: int) -> int:
        """``default_step_limit`` of a reversed array of ``length`` values, in Python ints (the
        jitted one is int32: this is how the constructor knows it fits)."""
        m = max(length - 1, 0)
        return 2 * (12 * m * m + 5 * m + 1 + length * (length - 1) // 2)

    # The four task functions (pure, in task.py).
    def apply_primitive(self, pad: SortPad, program: chex.Array, args: chex.Array):
        return task.apply_primitive(pad, program, args,
                                    track_inversions=self.reward_type == "dense")

    def expert_call(self, pad: SortPad, frame: Frame) -> chex.Array:
        return task.expert_call(pad, frame)

    def postcondition(self, pad: SortPad, frame: Frame) -> chex.Array:
        return task.postcondition(pad, frame, self._num_programs)

    def local_view(self, pad: SortPad) -> chex.Array:
        return task.local_view(pad)

    # Views, snapshot, dense reward and step budget.
    @cached_property
    def local_view_spec(self) -> specs.MultiDiscreteArray:
        values = self.max_value + 1
        return specs.MultiDiscreteArray(
            num_values=jnp.asarray([values, values] + [2] * (2 * c.NUM_POINTERS), jnp.int32),
            name="local")

    def full_view(self, pad: SortPad) -> FullView:
        return task.full_view(pad)

    @cached_property
    def full_view_spec(self) -> specs.Spec:
        return specs.Spec(
            FullView, "full",
            cells=specs.BoundedArray((self.max_length,), self.generator.dtype, 0,
                                     self.max_value + 1, "cells"),
            length=specs.BoundedArray((), jnp.int32, 1, self.max_length, "length"),
            pointers=specs.BoundedArray((c.NUM_POINTERS,), jnp.int32, 0, self.max_length - 1,
                                        "pointers"))

    def snapshot(self, pad: SortPad) -> Snapshot:
        return task.snapshot(pad)

    def progress(self, pad: SortPad) -> chex.Array:
        return task.progress(pad)

    def default_step_limit(self, pad: SortPad) -> chex.Array:
        return task.default_step_limit(pad)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(generator={self.generator!r}, "
                f"{super().__repr__().split('(', 1)[1]}")


class Max(Sorting):
    """NPI's MAX (section 4.3): a program added on top of a core that already sorts.

    ``MAX`` (the root) -> ``BUBBLESORT``, ``RJMP``; ``RJMP`` -> ``RSHIFT``; below them the
    sorting library of :class:`Sorting`. The expert calls BUBBLESORT, then RJMP, which RSHIFTs
    until pointers 1 and 2 are on the last cell; BUBBLESORT leaves pointer 3 there, so all
    pointers end at the right end, on the maximum.

    By default the core's programs that the new ones call, BUBBLESORT and RSHIFT, are
    ``builtin`` (learned skills run as macro actions) and the agent executes MAX and RJMP, as
    NPI trained only the two new programs; ``modes="hierarchical"`` has the agent execute
    everything, ``"macro"`` makes BUBBLESORT and RJMP builtin, ``"flat"`` has MAX call
    primitives only.

    - observation, action, knobs: as :class:`Sorting` (action_mask (12,), programs in
      ``[12, 3, 2, 1]``).
    - reward: ``"sparse"``: 1 when MAX returns with pointers 1 and 2 on the last cell holding
      the array's maximum (and the array a permutation of the original). ``"dense"``: also
      the normalised inversions removed, as :class:`Sorting` (MAX's expert sorts).
    - episode end: ``termination`` when MAX returns; ``truncation`` at the step limit
      (default twice the hierarchical expert's worst case, Sorting's plus ``4 m + 4``).

    ```python
    import jax
    import npigym

    env = npigym.make("Max-v0", max_length=6)
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step, expert = jax.jit(env.step), jax.jit(env.expert_action)
    while not timestep.last():
        state, timestep = step(state, expert(state))
    print(env.render(state), timestep.extras["success"])
    ```
    """

    _programs = MAX_PROGRAMS
    _root = MAX_ROOT
    _default_modes = MAX_SKILL_MODES
    _num_programs = c.NUM_MAX_PROGRAMS

    def default_step_limit(self, pad: SortPad) -> chex.Array:
        return task.max_default_step_limit(pad)

    @staticmethod
    def worst_case_step_limit(length: int) -> int:
        m = max(length - 1, 0)
        return Sorting.worst_case_step_limit(length) + 2 * (4 * m + 4)
