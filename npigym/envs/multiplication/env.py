"""``Multiplication-v0``: long multiplication whose additions are Addition's ADD."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, Mapping, Optional, Tuple

import chex
import jax.numpy as jnp
from jumanji import specs

from npigym.envs.addition import Addition
from npigym.envs.composition import Embedding
from npigym.envs.machine.checks import check_time_limit
from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import ModesLike, ProgramLibrary
from npigym.envs.machine.skill import Skill
from npigym.envs.machine.stack import tree_where
from npigym.envs.machine.types import Frame
from npigym.envs.multiplication import constants as c
from npigym.envs.multiplication import task
from npigym.envs.multiplication.generator import MultiplicationGenerator, RandomGenerator
from npigym.envs.multiplication.programs import DEFAULT_MODES, PROGRAMS, ROOT
from npigym.envs.multiplication.types import FullView, MulPad, Snapshot
from npigym.envs.multiplication.viewer import MultiplicationViewer


class Multiplication(ProgramEnv):
    """Long multiplication by place value, built on Addition's ADD (a composition task).

    A multiplicand A and a multiplier B are written right-aligned in rows A and B of a 5-row
    scratchpad (A, B, ACC, CARRY, OUT; edges hold sentinel cells). MUL (the root) computes
    ``ACC += A * B``: for each digit ``b`` of B, units first, it calls ``ADD`` then ``COMMIT``
    ``b`` times, then ``NEXT``; it returns once B's digits are used up. ADD is Addition's
    program, unchanged: it runs on a view of the pad (``task.addition_view``) where IN1 is the
    running total ACC, IN2 is A shifted to the digit's place with zeros written below it (as
    on paper), and CARRY and OUT are the pad's own, so a policy trained on ``Addition-v0``
    runs here as a skill (``skills={"ADD": skill}``).

    Programs: Addition's (``MOVE_PTR``, ``WRITE``, ``ADD``, ``ADD1``, ``CARRY``, ``LSHIFT``,
    ``RSHIFT``; same ids), then ``COMMIT`` (primitive: ACC takes OUT's sum; OUT and CARRY are
    cleared; the view's pointers return to the units column), ``NEXT`` (primitive: the next
    multiplier digit, once the current one is settled: as many additions committed as the
    digit) and ``MUL`` -> ``ADD``, ``COMMIT``, ``NEXT``.

    Posings (``modes``): the default has ADD builtin (the Addition expert as a macro action)
    and the agent executing MUL; ``skills={"ADD": skill}`` makes ADD a learned skill;
    ``"hierarchical"`` has the agent execute ADD's programs too (learning it all); ``"flat"``
    has MUL call MOVE_PTR, WRITE, COMMIT and NEXT directly.

    - observation: ``Observation`` (see ``npigym.envs.machine``):
        - program, args, depth: the frame being executed;
        - action_mask: (11,) bool, the programs it may call;
        - local: (7,) int32: the four cells under the Addition view's pointers (ACC, shifted
          A, CARRY, OUT; Addition's encoding, 0 blank, d + 1 digit d, 11 edge), then B's cell
          under its pointer, the digit's additions so far (clipped at 9) and whether a sum
          waits in OUT (0/1);
        - full: with ``observation="full"``, ``FullView(pad (5, W) int8, add_pointers (4,),
          b_pointer ())``.
    - action: ``(program, arg0, arg1, arg2)`` in ``[11, 4, 10, 1]``, as Addition's.
    - reward: ``"sparse"``: 1 when MUL returns with ACC holding A * B (checked modulo two
      primes), OUT and CARRY clear and B's digits used up. ``"dense"``: also the change in the
      fraction of the product's additions (the sum of B's digits) made with ACC right for them.
    - episode end: ``termination`` when MUL returns; ``truncation`` at the step limit (default
      twice the hierarchical expert's worst case, every digit a 9 and every column carrying).
    - postconditions: MUL's as the sparse reward's (with ``ACC at call + A * B``, so MUL is a
      multiply-accumulate, as DotProduct uses it); ADD's programs' as Addition's, on the view.

    Args:
        min_digits, max_digits: the multiplicand's digits (default 1 and 3).
        min_multiplier_digits, max_multiplier_digits: the multiplier's (default the same).
            The pad has ``max_digits + max_multiplier_digits + 4`` columns. Give these or
            ``generator``, not both.
        generator: a ``MultiplicationGenerator`` (``RandomGenerator``, ``ProblemGenerator``).
        reward, observation, time_limit, invalid_action_penalty, render_mode, viewer: as
            ``Addition``'s.
        modes: the default above, ``"hierarchical"``, ``"macro"`` (ADD builtin), ``"flat"``,
            or a dict such as ``{"ADD": "agent", "ADD1": "builtin"}``.
        skills: ``{program: Skill}``, e.g. ``{"ADD": npigym.skills.load("add")}``: trained
            policies run as those programs (any of Addition's programs can be bound).

    ```python
    import jax
    import npigym

    env = npigym.make("Multiplication-v0", max_digits=3)
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step, expert = jax.jit(env.step), jax.jit(env.expert_action)
    while not timestep.last():
        state, timestep = step(state, expert(state))
    print(env.render(state), timestep.extras["success"])
    ```
    """

    size_knobs = ("min_digits", "max_digits", "min_multiplier_digits", "max_multiplier_digits")

    def __init__(
        self,
        min_digits: Optional[int] = None,
        max_digits: Optional[int] = None,
        min_multiplier_digits: Optional[int] = None,
        max_multiplier_digits: Optional[int] = None,
        generator: Optional[MultiplicationGenerator] = None,
        reward: str = "sparse",
        modes: ModesLike = None,
        observation: str = "local",
        time_limit: Optional[int] = None,
        invalid_action_penalty: float = 0.0,
        render_mode: str = "ansi",
        viewer: Optional[MultiplicationViewer] = None,
        skills: Optional[Mapping[str, Skill]] = None,
    ):
        sizes = (min_digits, max_digits, min_multiplier_digits, max_multiplier_digits)
        if generator is None:
            generator = RandomGenerator(1 if min_digits is None else min_digits,
                                        3 if max_digits is None else max_digits,
                                        min_multiplier_digits, max_multiplier_digits)
        elif any(s is not None for s in sizes):
            raise ValueError("pass either the digit ranges or a generator, not both "
                             f"(the generator {generator!r} sets the sizes)")
        if not isinstance(generator, MultiplicationGenerator):
            raise TypeError("generator must be a MultiplicationGenerator, "
                            f"not {type(generator).__name__}")
        time_limit = check_time_limit(time_limit)
        library = ProgramLibrary(PROGRAMS, ROOT, DEFAULT_MODES if modes is None else modes)
        self.width = generator.width
        self.addition = Embedding(Addition(max_digits=1), library, task.addition_view,
                                  task.embed_addition)
        super().__init__(
            library, generator, reward=reward, observation=observation, time_limit=time_limit,
            invalid_action_penalty=invalid_action_penalty, render_mode=render_mode,
            viewer=viewer or MultiplicationViewer(library), skills=skills)

    # The four task functions: MUL's own (task.py) or Addition's through the view.
    def apply_primitive(self, m: MulPad, program: chex.Array, args: chex.Array):
        added, added_ok = self.addition.apply_primitive(m, program, args)
        own, own_ok = task.apply_primitive(m, program)
        is_addition = self.addition.is_member(program)
        return tree_where(is_addition, added, own), jnp.where(is_addition, added_ok, own_ok)

    def expert_call(self, m: MulPad, frame: Frame) -> chex.Array:
        added = self.addition.expert_call(m, frame._replace(snapshot=frame.snapshot.add))
        return jnp.where(self.addition.is_member(frame.program), added, task.expert_call(m))

    def postcondition(self, m: MulPad, frame: Frame) -> chex.Array:
        added = self.addition.postcondition(m, frame._replace(snapshot=frame.snapshot.add))
        mul = (frame.program == c.MUL) & task.mul_postcondition(m, frame.snapshot)
        return jnp.where(self.addition.is_member(frame.program), added, mul)

    def local_view(self, m: MulPad) -> chex.Array:
        return jnp.concatenate([self.addition.local_view(m), task.own_view(m)])

    def skill_view(self, program: str) -> Tuple[Callable[[MulPad], Any],
                                                Callable[[MulPad, Any], MulPad]]:
        """Addition's programs see the Addition view; MUL, the root, is never a skill here."""
        return task.addition_view, task.embed_addition

    # Views, snapshot, dense reward and step budget.
    @cached_property
    def local_view_spec(self) -> specs.MultiDiscreteArray:
        sizes = [c.NUM_CELL_VALUES] * 5 + [c.MAX_REPS + 1, 2]
        return specs.MultiDiscreteArray(num_values=jnp.asarray(sizes, jnp.int32), name="local")

    def full_view(self, m: MulPad) -> FullView:
        return task.full_view(m)

    @cached_property
    def full_view_spec(self) -> specs.Spec:
        return specs.Spec(
            FullView, "full",
            pad=specs.BoundedArray((c.NUM_ROWS, self.width), jnp.int8, 0, c.NUM_CELL_VALUES - 1,
                                   "pad"),
            add_pointers=specs.BoundedArray((4,), jnp.int32, 0, self.width - 1, "add_pointers"),
            b_pointer=specs.BoundedArray((), jnp.int32, 0, self.width - 1, "b_pointer"))

    def snapshot(self, m: MulPad) -> Snapshot:
        return task.snapshot(m, self.addition.snapshot(m))

    def progress(self, m: MulPad) -> chex.Array:
        return task.progress(m)

    def default_step_limit(self, m: MulPad) -> chex.Array:
        return task.default_step_limit(m)

    def __repr__(self) -> str:
        return (f"Multiplication(generator={self.generator!r}, "
                f"{super().__repr__().split('(', 1)[1]}")
