"""``DotProduct-v0``: the sum of products of two vectors of multi-digit numbers."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, Mapping, Optional, Tuple

import chex
import jax.numpy as jnp
from jumanji import specs

from npigym.envs.addition.programs import PROGRAMS as ADDITION_PROGRAMS
from npigym.envs.composition import Embedding
from npigym.envs.dot_product import constants as c
from npigym.envs.dot_product import task
from npigym.envs.dot_product.generator import DotProductGenerator, RandomGenerator
from npigym.envs.dot_product.programs import DEFAULT_MODES, PROGRAMS, ROOT
from npigym.envs.dot_product.types import DotPad, FullView, Snapshot
from npigym.envs.dot_product.viewer import DotProductViewer
from npigym.envs.machine.checks import check_time_limit, is_int
from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import ModesLike, ProgramLibrary
from npigym.envs.machine.skill import Skill
from npigym.envs.machine.stack import tree_where
from npigym.envs.machine.types import Frame
from npigym.envs.multiplication import Multiplication
from npigym.envs.multiplication import constants as mc
from npigym.envs.multiplication import task as mul

_ADDITION_NAMES = frozenset(p.name for p in ADDITION_PROGRAMS)


class DotProduct(ProgramEnv):
    """The dot product of two vectors of multi-digit numbers: three generations of skills.

    ``x`` and ``y`` hold ``k`` numbers each; the answer ``sum_i x_i * y_i`` is built in one
    running total, ACC. DOT (the root) calls ``MUL`` on each pair and ``NEXT_PAIR`` between
    them. MUL is Multiplication's program, unchanged, on a view of the state
    (``task.multiplication_view``: A = x_i, B = y_i and the shared ACC, CARRY and OUT rows);
    it is a multiply-accumulate (``ACC += A * B``) and itself calls Addition's ADD, so the
    library is ADD -> MUL -> DOT (the position paper's linear layer in miniature).

    Programs: Multiplication's (Addition's, ``COMMIT``, ``NEXT``, ``MUL``; same ids), then
    ``NEXT_PAIR`` (primitive: the next pair once this one is done; the multiplier pointer back
    to the units column)
    and ``DOT`` -> ``MUL``, ``NEXT_PAIR``.

    Posings: the default has MUL builtin (the expert multiplies) and the agent executing
    DOT; ``skills={"MUL": skill}`` runs a learned MUL (whose own env may bind a learned ADD:
    a skill calling a skill); ``modes={"MUL": "agent", "ADD": "skill"}, skills={"ADD": ...}``
    has the agent learn MUL over a learned ADD; ``"hierarchical"`` learns everything;
    ``"flat"`` has DOT call the primitives directly.

    - observation: ``Observation`` (see ``npigym.envs.machine``):
        - program, args, depth: the frame being executed;
        - action_mask: (13,) bool, the programs it may call;
        - local: (8,) int32: Multiplication's local view of the current pair (the four
          Addition-view cells, y_i's cell under the multiplier pointer, the digit's additions,
          a pending sum) and whether another pair follows (0/1);
        - full: with ``observation="full"``, the vectors, the work rows and the pointers.
    - action: ``(program, arg0, arg1, arg2)`` in ``[13, 4, 10, 1]``.
    - reward: ``"sparse"``: 1 when DOT returns with ACC holding the dot product (checked
      modulo two primes), OUT and CARRY clear and the last pair done. ``"dense"``: also the
      change in the fraction of all pairs' additions made with ACC right for them.
    - episode end: ``termination`` when DOT returns; ``truncation`` at the step limit (default
      twice the hierarchical expert's worst case).

    Args:
        min_length, max_length: pairs per instance (default 2, or 1 with ``max_length=1``,
            and 3; at most 9).
        min_digits, max_digits: digits of each number (default 1 and 2). The pad has
            ``2 * max_digits + 5`` columns. Give these or ``generator``, not both.
        generator: a ``DotProductGenerator`` (``RandomGenerator``, ``VectorGenerator``).
        reward, modes, observation, time_limit, invalid_action_penalty, render_mode, viewer, skills:
            as ``Multiplication``'s.

    ```python
    import jax
    import npigym

    env = npigym.make("DotProduct-v0", max_length=3, max_digits=2)
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
        min_length: Optional[int] = None,
        max_length: Optional[int] = None,
        min_digits: Optional[int] = None,
        max_digits: Optional[int] = None,
        generator: Optional[DotProductGenerator] = None,
        reward: str = "sparse",
        modes: ModesLike = None,
        observation: str = "local",
        time_limit: Optional[int] = None,
        invalid_action_penalty: float = 0.0,
        render_mode: str = "ansi",
        viewer: Optional[DotProductViewer] = None,
        skills: Optional[Mapping[str, Skill]] = None,
    ):
        sizes = (min_length, max_length, min_digits, max_digits)
        if generator is None:
            if min_length is None:  # the default 2, unless max_length asks for a single pair
                min_length = 1 if is_int(max_length) and max_length == 1 else 2
            generator = RandomGenerator(min_length,
                                        3 if max_length is None else max_length,
                                        1 if min_digits is None else min_digits,
                                        2 if max_digits is None else max_digits)
        elif any(s is not None for s in sizes):
            raise ValueError("pass either the sizes or a generator, not both "
                             f"(the generator {generator!r} sets the sizes)")
        if not isinstance(generator, DotProductGenerator):
            raise TypeError("generator must be a DotProductGenerator, "
                            f"not {type(generator).__name__}")
        time_limit = check_time_limit(time_limit)
        library = ProgramLibrary(PROGRAMS, ROOT, DEFAULT_MODES if modes is None else modes)
        self.width = generator.width
        self.multiplication = Embedding(Multiplication(max_digits=1), library,
                                        task.multiplication_view, task.embed_multiplication)
        super().__init__(
            library, generator, reward=reward, observation=observation, time_limit=time_limit,
            invalid_action_penalty=invalid_action_penalty, render_mode=render_mode,
            viewer=viewer or DotProductViewer(library), skills=skills)

    # The four task functions: DOT's own (task.py) or Multiplication's through the view.
    def apply_primitive(self, d: DotPad, program: chex.Array, args: chex.Array):
        multiplied, multiplied_ok = self.multiplication.apply_primitive(d, program, args)
        own, own_ok = task.apply_next_pair(d)
        own_ok &= program == c.NEXT_PAIR
        member = self.multiplication.is_member(program)
        return tree_where(member, multiplied, own), jnp.where(member, multiplied_ok, own_ok)

    def expert_call(self, d: DotPad, frame: Frame) -> chex.Array:
        called = self.multiplication.expert_call(d, frame._replace(snapshot=frame.snapshot.mul))
        return jnp.where(self.multiplication.is_member(frame.program), called,
                         task.expert_call(d))

    def postcondition(self, d: DotPad, frame: Frame) -> chex.Array:
        called = self.multiplication.postcondition(
            d, frame._replace(snapshot=frame.snapshot.mul))
        dot = (frame.program == c.DOT) & task.dot_postcondition(d, frame.snapshot)
        return jnp.where(self.multiplication.is_member(frame.program), called, dot)

    def local_view(self, d: DotPad) -> chex.Array:
        return jnp.concatenate([self.multiplication.local_view(d), task.own_view(d)])

    def skill_view(self, program: str) -> Tuple[Callable[[DotPad], Any],
                                                Callable[[DotPad, Any], DotPad]]:
        """MUL's programs see the multiplication view; Addition's see that view's own Addition
        view (so ADD can be bound here directly, e.g. under an agent-executed MUL)."""
        if program not in _ADDITION_NAMES:
            return task.multiplication_view, task.embed_multiplication

        def project(d: DotPad):
            return mul.addition_view(task.multiplication_view(d))

        def embed(d: DotPad, s) -> DotPad:
            m = task.multiplication_view(d)
            return task.embed_multiplication(d, mul.embed_addition(m, s))

        return project, embed

    # Views, snapshot, dense reward and step budget.
    @cached_property
    def local_view_spec(self) -> specs.MultiDiscreteArray:
        sizes = [mc.NUM_CELL_VALUES] * 5 + [mc.MAX_REPS + 1, 2, 2]
        return specs.MultiDiscreteArray(num_values=jnp.asarray(sizes, jnp.int32), name="local")

    def full_view(self, d: DotPad) -> FullView:
        return task.full_view(d)

    @cached_property
    def full_view_spec(self) -> specs.Spec:
        n, w = self.generator.max_length, self.width
        rows = specs.BoundedArray((n, w), jnp.int8, 0, mc.NUM_CELL_VALUES - 1, "rows")
        return specs.Spec(
            FullView, "full", x=rows, y=rows,
            work=specs.BoundedArray((3, w), jnp.int8, 0, mc.NUM_CELL_VALUES - 1, "work"),
            pair=specs.BoundedArray((), jnp.int32, 0, n - 1, "pair"),
            add_pointers=specs.BoundedArray((4,), jnp.int32, 0, w - 1, "add_pointers"),
            b_pointer=specs.BoundedArray((), jnp.int32, 0, w - 1, "b_pointer"))

    def snapshot(self, d: DotPad) -> Snapshot:
        return task.snapshot(d, self.multiplication.snapshot(d))

    def progress(self, d: DotPad) -> chex.Array:
        return task.progress(d)

    def default_step_limit(self, d: DotPad) -> chex.Array:
        return task.default_step_limit(d)

    def __repr__(self) -> str:
        return f"DotProduct(generator={self.generator!r}, {super().__repr__().split('(', 1)[1]}"
