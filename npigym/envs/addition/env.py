"""``Addition-v0``: NPI's grade-school addition on a scratchpad."""

from __future__ import annotations

from functools import cached_property
from typing import Mapping, Optional

import chex
import jax.numpy as jnp
from jumanji import specs

from npigym.envs.addition import constants as c
from npigym.envs.addition import task
from npigym.envs.addition.generator import AdditionGenerator, RandomGenerator
from npigym.envs.addition.programs import PROGRAMS, ROOT
from npigym.envs.addition.types import FullView, Scratchpad, Snapshot
from npigym.envs.addition.viewer import AdditionViewer
from npigym.envs.machine.checks import check_time_limit
from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import ModesLike, ProgramLibrary
from npigym.envs.machine.skill import Skill
from npigym.envs.machine.types import Frame


class Addition(ProgramEnv):
    """Multi-digit addition as in Neural Programmer-Interpreters (Reed & de Freitas, 2016).

    Two numbers are written right-aligned in rows IN1 and IN2 of a 4-row scratchpad (IN1, IN2,
    CARRY, OUT) whose edges hold sentinel cells; one pointer per row starts on the units column.
    The agent computes the sum into OUT by calling programs:

    - primitives ``MOVE_PTR(row, LEFT|RIGHT)`` and ``WRITE(CARRY|OUT, digit)`` (NPI's ACT);
    - ``ADD`` (the root) -> ``ADD1``, ``LSHIFT``; ``ADD1`` -> ACT, ``CARRY``; ``CARRY`` -> ACT;
      ``LSHIFT`` / ``RSHIFT`` -> ACT (RSHIFT is in the paper's table; ADD does not call it);
    - ``RETURN``, which ends the current program.

    - observation: ``Observation`` (see ``npigym.envs.machine``):
        - program, args, depth: the frame being executed;
        - action_mask: (8,) bool, the programs it may call;
        - local: (4,) int32 in [0, 11], the cells under the four pointers (0 blank, d + 1 for
          digit d, 11 the pad's edge), NPI's encoder input;
        - full: with ``observation="full"``, ``FullView(pad (4, W) int8, pointers (4,) int32)``.
    - action: ``(program, arg0, arg1, arg2)`` in ``[8, 4, 10, 1]``; MOVE_PTR reads (row, dir),
      WRITE reads (row, digit). Invalid actions (masked program, WRITE to an input row, a move
      off the pad, ...) are no-ops costing ``invalid_action_penalty``.
    - reward: ``"sparse"``: 1 when ADD returns with OUT holding the sum and the IN1, IN2 and
      CARRY pointers past its top digit (where NPI's trace returns). ``"dense"``: also the
      change, each step, in the fraction of the operands' columns that OUT has right, counted
      from the units column up.
    - episode end: ``termination`` when ADD (the root) returns, right or wrong; ``truncation``
      when the step limit is reached (default: twice the expert's worst case for the instance,
      ``2 * (14 * (digits + 1) + 1)``).
    - postconditions (``extras["postcondition"]`` when a program returns): ADD, the sparse
      reward's condition; ADD1, OUT holds the column's digit, the carry cell left of the
      carry pointer holds 1 if the column sum was 10 or more, pointers back; CARRY, that carry
      cell holds 1, pointers back; LSHIFT / RSHIFT, every pointer one column left / right.
      ADD1, CARRY and the shifts must also leave every other cell as they found it.

    Args:
        min_digits, max_digits: size of the random problems (default 1 and 10). The pad has
            ``max_digits + 4`` columns. Give these or ``generator``, not both.
        nines: probability of a 9 for each digit of the random problems (a training-difficulty
            knob: longer carry chains; see ``RandomGenerator``); default uniform digits.
        generator: an ``AdditionGenerator`` (``RandomGenerator``, ``ProblemGenerator`` or your own).
        reward: ``"sparse"`` or ``"dense"``.
        modes: ``"hierarchical"`` (default: the agent executes every program), ``"macro"``
            (ADD1 and LSHIFT run as builtin macro actions), ``"flat"`` (ADD calls primitives
            only), or a dict such as ``{"CARRY": "builtin"}``.
        observation: ``"local"`` or ``"full"`` (adds the whole pad and pointers).
        time_limit: fixed step limit instead of the per-instance default.
        invalid_action_penalty: subtracted from the reward of an invalid action.
        render_mode: default of ``render``: ``"ansi"``, ``"rgb_array"`` or ``"human"``.
        viewer: an ``AdditionViewer`` (or another ``ProgramViewer``).
        skills: ``{program: Skill}``: trained policies run as those programs (``skill``
            mode, ``npigym.envs.machine.skill``); ``npigym.make`` also takes skill names.

    ```python
    import jax
    import npigym

    env = npigym.make("Addition-v0", max_digits=5)
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step, expert = jax.jit(env.step), jax.jit(env.expert_action)
    while not timestep.last():
        state, timestep = step(state, expert(state))
    print(env.render(state), timestep.extras["success"])
    ```
    """

    size_knobs = ("min_digits", "max_digits")

    def __init__(
        self,
        min_digits: Optional[int] = None,
        max_digits: Optional[int] = None,
        generator: Optional[AdditionGenerator] = None,
        nines: Optional[float] = None,
        reward: str = "sparse",
        modes: ModesLike = None,
        observation: str = "local",
        time_limit: Optional[int] = None,
        invalid_action_penalty: float = 0.0,
        render_mode: str = "ansi",
        viewer: Optional[AdditionViewer] = None,
        skills: Optional[Mapping[str, Skill]] = None,
    ):
        if generator is None:
            generator = RandomGenerator(1 if min_digits is None else min_digits,
                                        10 if max_digits is None else max_digits, nines)
        elif min_digits is not None or max_digits is not None or nines is not None:
            raise ValueError("pass either min_digits/max_digits/nines or a generator, not both "
                             f"(the generator {generator!r} sets the sizes)")
        if not isinstance(generator, AdditionGenerator):
            raise TypeError("generator must be an AdditionGenerator, "
                            f"not {type(generator).__name__}")
        time_limit = check_time_limit(time_limit)
        library = ProgramLibrary(PROGRAMS, ROOT, modes)
        self.width = generator.width
        super().__init__(
            library, generator, reward=reward, observation=observation, time_limit=time_limit,
            invalid_action_penalty=invalid_action_penalty, render_mode=render_mode,
            viewer=viewer or AdditionViewer(library), skills=skills)

    # The four task functions (pure, in task.py).
    def apply_primitive(self, pad: Scratchpad, program: chex.Array, args: chex.Array):
        return task.apply_primitive(pad, program, args)

    def expert_call(self, pad: Scratchpad, frame: Frame) -> chex.Array:
        return task.expert_call(pad, frame)

    def postcondition(self, pad: Scratchpad, frame: Frame) -> chex.Array:
        return task.postcondition(pad, frame)

    def local_view(self, pad: Scratchpad) -> chex.Array:
        return task.cells_under_pointers(pad)

    # Views, snapshot, dense reward and step budget.
    @cached_property
    def local_view_spec(self) -> specs.MultiDiscreteArray:
        return specs.MultiDiscreteArray(
            num_values=jnp.full((c.NUM_ROWS,), c.NUM_CELL_VALUES, jnp.int32), name="local")

    def full_view(self, pad: Scratchpad) -> FullView:
        return task.full_view(pad)

    @cached_property
    def full_view_spec(self) -> specs.Spec:
        return specs.Spec(
            FullView, "full",
            pad=specs.BoundedArray((c.NUM_ROWS, self.width), jnp.int8, 0, c.NUM_CELL_VALUES - 1,
                                   "pad"),
            pointers=specs.BoundedArray((c.NUM_ROWS,), jnp.int32, 0, self.width - 1, "pointers"))

    def snapshot(self, pad: Scratchpad) -> Snapshot:
        return task.snapshot(pad)

    def progress(self, pad: Scratchpad) -> chex.Array:
        return task.progress(pad)

    def default_step_limit(self, pad: Scratchpad) -> chex.Array:
        return task.default_step_limit(pad)

    def __repr__(self) -> str:
        return f"Addition(generator={self.generator!r}, {super().__repr__().split('(', 1)[1]}"

