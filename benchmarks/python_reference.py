"""A plain-Python reference of npigym's ``Addition-v0``: one environment, one step at a time.

This is the addition machine written the way the classic NPI implementations write it
(keras_npi, siddk/npi): Python objects, lists and a call stack of frames, stepped by a Python
loop. It serves two purposes:

- **a throughput baseline**: ``benchmarks/env_throughput.py`` measures it next to the jitted,
  vmapped JAX environment;
- **a semantic cross-check**: it was written from the specification (NPI's scratchpad and program
  library, npigym's rules for masks, invalid actions, postconditions and step limits), not ported
  from the JAX code, and ``tests/benchmarks/test_python_reference.py`` checks that both agree step
  by step.

It deliberately imports neither JAX nor npigym, so a bug in npigym cannot leak into it.

The machine:

- Pad: 4 rows (IN1, IN2, CARRY, OUT) by ``max_digits + 4`` columns; 0 is blank, digit ``d`` is
  stored as ``d + 1``, 11 marks the edge columns. Operands are right-aligned with their units
  digit in column ``width - 2``, where all four pointers start.
- Action: ``(program, arg0, arg1, arg2)`` in ``[8, 4, 10, 1]``. Programs: RETURN=0,
  MOVE_PTR(row, dir)=1, WRITE(row in CARRY|OUT, digit)=2, ADD=3 (the root), ADD1=4, CARRY=5,
  LSHIFT=6, RSHIFT=7. Arguments a program does not take are ignored (reported as 0).
- Calling ADD1/CARRY/LSHIFT/RSHIFT pushes a frame; RETURN pops it after checking the returning
  program's postcondition; RETURN from ADD ends the episode (success if OUT holds the sum and
  the IN1, IN2 and CARRY pointers are past its top digit).
- An invalid action (masked program, disallowed argument, a move off the pad, a write on an edge
  cell) changes nothing but still counts towards the step limit, ``2 * (14 * (n + 1) + 1)`` for
  an ``n``-digit problem; reaching it truncates the episode.

Usage::

    env = PythonAddition(max_digits=5, seed=0)
    observation = env.reset()
    while True:
        timestep = env.step(env.expert_action())
        if timestep.last():
            break
"""

from __future__ import annotations

import dataclasses
import enum
import random
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

# Rows of the pad (and pointer indices).
IN1, IN2, CARRY_ROW, OUT = 0, 1, 2, 3
NUM_ROWS = 4
LEFT, RIGHT = 0, 1
# Cell values.
BLANK, SENTINEL = 0, 11

# Program ids (the action's first component).
RETURN, MOVE_PTR, WRITE, ADD, ADD1, CARRY, LSHIFT, RSHIFT = range(8)
PROGRAM_NAMES = ("RETURN", "MOVE_PTR", "WRITE", "ADD", "ADD1", "CARRY", "LSHIFT", "RSHIFT")
NUM_PROGRAMS = len(PROGRAM_NAMES)
# Sizes of the three argument slots of an action.
ARG_SLOT_SIZES = (NUM_ROWS, 10, 1)
ACTION_SIZES = (NUM_PROGRAMS, *ARG_SLOT_SIZES)
# The deepest call chain is ADD -> ADD1 -> CARRY.
MAX_DEPTH = 3
# Agent steps the expert needs per column at most: ADD's two calls, ADD1 with CARRY (3 + 4),
# LSHIFT (5). The default step limit is twice the worst case.
EXPERT_STEPS_PER_COLUMN = 14
EXTRA_COLUMNS = 4


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """A program of the addition library.

    Attributes:
        name: as in the NPI paper.
        args: for each argument it takes, the values it allows.
        callees: programs it may call (RETURN is always allowed and not listed).
    """

    name: str
    args: Tuple[Tuple[int, ...], ...] = ()
    callees: FrozenSet[int] = frozenset()

    @property
    def opens_frame(self) -> bool:
        """Whether calling it pushes a frame (it is a program, not a primitive or RETURN)."""
        return bool(self.callees)


_ROWS = tuple(range(NUM_ROWS))
_DIGITS = tuple(range(10))
LIBRARY: Dict[int, ProgramSpec] = {
    RETURN: ProgramSpec("RETURN"),
    MOVE_PTR: ProgramSpec("MOVE_PTR", args=(_ROWS, (LEFT, RIGHT))),
    WRITE: ProgramSpec("WRITE", args=((CARRY_ROW, OUT), _DIGITS)),
    ADD: ProgramSpec("ADD", callees=frozenset({ADD1, LSHIFT})),
    ADD1: ProgramSpec("ADD1", callees=frozenset({MOVE_PTR, WRITE, CARRY})),
    CARRY: ProgramSpec("CARRY", callees=frozenset({MOVE_PTR, WRITE})),
    LSHIFT: ProgramSpec("LSHIFT", callees=frozenset({MOVE_PTR})),
    RSHIFT: ProgramSpec("RSHIFT", callees=frozenset({MOVE_PTR})),
}


class StepType(enum.IntEnum):
    """As ``jumanji.types.StepType``."""

    FIRST = 0
    MID = 1
    LAST = 2


class Snapshot(NamedTuple):
    """What postconditions need of the pad when a program was called."""

    pointers: Tuple[int, ...]
    cells: Tuple[int, ...]
    ink: int  # the pad's fingerprint (npigym's Scratchpad.ink)
    out_cell: int  # OUT under its pointer
    carry_cell: int  # CARRY left of its pointer


def cell_key(row: int, col: int) -> int:
    """npigym's ``task.cell_key``: an odd pseudo-random uint32 per cell."""
    k = ((col * NUM_ROWS + row) * 0x9E3779B1) % 2**32
    return (((k ^ (k >> 15)) * 0x85EBCA77) % 2**32) | 1


@dataclasses.dataclass
class Frame:
    """One call on the stack: which program, its arguments, how many calls it has made."""

    program: int
    args: Tuple[int, int, int]
    snapshot: Snapshot
    steps: int = 0


class Observation(NamedTuple):
    """NPI's view: the running program, its arguments and depth, the mask, the pointer cells."""

    program: int
    args: Tuple[int, int, int]
    depth: int
    action_mask: Tuple[bool, ...]
    local: Tuple[int, ...]


class TimeStep(NamedTuple):
    """The result of a step (the fields of a Jumanji ``TimeStep`` and npigym's extras)."""

    step_type: StepType
    reward: float
    discount: float
    observation: Observation
    invalid_action: bool
    returned_program: int
    postcondition: bool
    success: bool
    primitive_steps: int

    def last(self) -> bool:
        return self.step_type == StepType.LAST


def digit_of(cell: int) -> int:
    """A cell's digit; blanks and edges count as 0."""
    return cell - 1 if BLANK < cell < SENTINEL else 0


def cell_of(digit: int) -> int:
    """The cell value that holds ``digit``."""
    return digit + 1


class PythonAddition:
    """NPI's addition task as a plain-Python environment (see the module docstring).

    Args:
        min_digits, max_digits: size of the random problems; the pad has ``max_digits + 4``
            columns.
        reward: ``"sparse"`` (1 for a successful RETURN from ADD) or ``"dense"`` (also the change
            in the fraction of the operands' columns that OUT has right, from the units up).
        time_limit: a fixed step limit instead of ``2 * (14 * (n + 1) + 1)``.
        invalid_action_penalty: subtracted from the reward of an invalid action.
        seed: seeds the generator of random problems.
    """

    def __init__(self, min_digits: int = 1, max_digits: int = 10, reward: str = "sparse",
                 time_limit: Optional[int] = None, invalid_action_penalty: float = 0.0,
                 seed: Optional[int] = None):
        if not 1 <= min_digits <= max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
        if reward not in ("sparse", "dense"):
            raise ValueError(f"reward must be 'sparse' or 'dense', not {reward!r}")
        self.min_digits = min_digits
        self.max_digits = max_digits
        self.width = max_digits + EXTRA_COLUMNS
        self.dense = reward == "dense"
        self.time_limit = time_limit
        self.invalid_action_penalty = invalid_action_penalty
        self.rng = random.Random(seed)
        self.pad: List[List[int]] = []
        self.pointers: List[int] = []
        self.stack: List[Frame] = []
        self.operands = (0, 0)
        self.num_digits = 0
        self.ink = 0
        self.step_count = 0
        self.step_limit = 0
        self._expected_out: List[int] = []

    # -- episode ------------------------------------------------------------------------------
    def reset(self, a: Optional[int] = None, b: Optional[int] = None) -> Observation:
        """Start an episode on ``a + b``, or on a random problem when they are not given."""
        if a is None or b is None:
            a, b = self.random_problem()
        if a < 0 or b < 0 or max(len(str(a)), len(str(b))) > self.max_digits:
            raise ValueError(f"{a} + {b} does not fit a {self.max_digits}-digit pad")
        self.operands = (a, b)
        self.num_digits = max(len(str(a)), len(str(b)))
        self.ink = 0
        self.pad = [self._row_with(a), self._row_with(b), self._row_with(None),
                    self._row_with(None)]
        self._expected_out = self._row_with(a + b)
        self.pointers = [self.width - 2] * NUM_ROWS
        self.stack = [Frame(ADD, (0, 0, 0), self.snapshot())]
        self.step_count = 0
        self.step_limit = (self.time_limit if self.time_limit is not None
                           else 2 * (EXPERT_STEPS_PER_COLUMN * (self.num_digits + 1) + 1))
        return self.observe()

    def random_problem(self) -> Tuple[int, int]:
        """As npigym's ``RandomGenerator``: one operand has ``n`` digits (``n`` uniform in
        ``[min_digits, max_digits]``), the other ``1..n`` (which one is random), no leading
        zeros."""
        rng = self.rng
        n = rng.randint(self.min_digits, self.max_digits)
        m = rng.randint(1, n)
        lengths = (m, n) if rng.random() < 0.5 else (n, m)
        a, b = (rng.randrange(10 ** (k - 1), 10 ** k) if k > 1 else rng.randrange(10)
                for k in lengths)
        return a, b

    def _row_with(self, number: Optional[int]) -> List[int]:
        """A pad row holding ``number``'s digits right-aligned on the units column."""
        row = [SENTINEL] + [BLANK] * (self.width - 2) + [SENTINEL]
        if number is not None:
            for i, ch in enumerate(reversed(str(number))):
                row[self.width - 2 - i] = cell_of(int(ch))
        return row

    # -- views --------------------------------------------------------------------------------
    def cells_under_pointers(self) -> Tuple[int, ...]:
        return tuple(self.pad[row][col] for row, col in enumerate(self.pointers))

    def snapshot(self) -> Snapshot:
        cells = self.cells_under_pointers()
        carry_cell = self.pad[CARRY_ROW][max(self.pointers[CARRY_ROW] - 1, 0)]
        return Snapshot(tuple(self.pointers), cells, self.ink, cells[OUT], carry_cell)

    def action_mask(self) -> Tuple[bool, ...]:
        """The programs the top frame may call: its callees (if there is room on the stack for a
        frame) and RETURN."""
        frame = self.stack[-1]
        callees = LIBRARY[frame.program].callees
        room = len(self.stack) < MAX_DEPTH
        return tuple(p == RETURN or (p in callees and (room or not LIBRARY[p].opens_frame))
                     for p in range(NUM_PROGRAMS))

    def observe(self) -> Observation:
        frame = self.stack[-1]
        return Observation(frame.program, frame.args, len(self.stack) - 1, self.action_mask(),
                           self.cells_under_pointers())

    # -- step ---------------------------------------------------------------------------------
    def step(self, action: Sequence[int]) -> TimeStep:
        """Execute one call ``(program, arg0, arg1, arg2)`` from the top frame."""
        program, *raw_args = (int(x) for x in action)
        frame = self.stack[-1]
        progress_before = self.progress() if self.dense else 0.0
        args = self._check_call(program, raw_args)
        invalid = args is None
        returned, postcondition, done, primitive_steps = -1, False, False, 0
        if args is None:
            pass
        elif program == RETURN:
            returned = frame.program
            postcondition = self.postcondition(frame)
            if len(self.stack) == 1:
                done = True
            else:
                self.stack.pop()
        elif LIBRARY[program].opens_frame:
            frame.steps += 1
            self.stack.append(Frame(program, args, self.snapshot()))
        elif self.apply_primitive(program, args):
            frame.steps += 1
            primitive_steps = 1
        else:
            invalid = True

        self.step_count += 1
        success = done and postcondition
        reward = float(success) - self.invalid_action_penalty * invalid
        if self.dense:
            reward += self.progress() - progress_before
        last = done or self.step_count >= self.step_limit
        return TimeStep(
            step_type=StepType.LAST if last else StepType.MID,
            reward=reward,
            discount=0.0 if done else 1.0,
            observation=self.observe(),
            invalid_action=invalid,
            returned_program=returned,
            postcondition=postcondition,
            success=success,
            primitive_steps=primitive_steps,
        )

    def _check_call(self, program: int, args: Sequence[int]) -> Optional[Tuple[int, int, int]]:
        """The call's arguments (0 in slots the program does not take), or None if the top frame
        may not make this call. Actions outside the action space are invalid."""
        if not 0 <= program < NUM_PROGRAMS or not self.action_mask()[program]:
            return None
        if any(not 0 <= v < size for v, size in zip(args, ARG_SLOT_SIZES)):
            return None
        allowed = LIBRARY[program].args
        if any(v not in values for v, values in zip(args, allowed)):
            return None
        used = list(args[: len(allowed)]) + [0] * (len(ARG_SLOT_SIZES) - len(allowed))
        return (used[0], used[1], used[2])

    def apply_primitive(self, program: int, args: Sequence[int]) -> bool:
        """MOVE_PTR or WRITE; returns False (and changes nothing) if it cannot be done."""
        row = args[0]
        col = self.pointers[row]
        if program == MOVE_PTR:
            target = col - 1 if args[1] == LEFT else col + 1
            if not 0 <= target < self.width:
                return False
            self.pointers[row] = target
            return True
        if self.pad[row][col] == SENTINEL:
            return False
        new = cell_of(args[1])
        self.ink = (self.ink + cell_key(row, col) * (new - self.pad[row][col])) % 2**32
        self.pad[row][col] = new
        return True

    def wrote_only(self, snap: Snapshot, out: bool, carry: bool) -> bool:
        """Whether, since ``snap``, the pad changed nowhere but in the allowed cells (npigym's
        ``task.wrote_only``: the same fingerprint, so the same O(1) cost per check)."""
        allowed = 0
        if out:
            col = snap.pointers[OUT]
            allowed += cell_key(OUT, col) * (self.pad[OUT][col] - snap.out_cell)
        if carry:
            col = max(snap.pointers[CARRY_ROW] - 1, 0)
            allowed += cell_key(CARRY_ROW, col) * (self.pad[CARRY_ROW][col] - snap.carry_cell)
        return (self.ink - snap.ink - allowed) % 2**32 == 0

    # -- task checks --------------------------------------------------------------------------
    def postcondition(self, frame: Frame) -> bool:
        """Whether ``frame``'s program did its job (checked when it returns)."""
        snap = frame.snapshot
        same_pointers = tuple(self.pointers) == snap.pointers
        carry_col = snap.pointers[CARRY_ROW] - 1
        carry_left_is_one = carry_col >= 0 and self.pad[CARRY_ROW][carry_col] == cell_of(1)
        if frame.program == ADD:
            sum_length = sum(BLANK < cell < SENTINEL for cell in self._expected_out)
            past_sum = all(p <= self.width - 2 - sum_length for p in self.pointers[:OUT])
            return self.pad[OUT] == self._expected_out and past_sum
        if frame.program == ADD1:
            total = sum(digit_of(cell) for cell in snap.cells[:OUT])
            wrote_digit = self.pad[OUT][snap.pointers[OUT]] == cell_of(total % 10)
            return (wrote_digit and (total < 10 or carry_left_is_one) and same_pointers
                    and self.wrote_only(snap, out=True, carry=total >= 10))
        if frame.program == CARRY:
            return carry_left_is_one and same_pointers and self.wrote_only(snap, False, True)
        if frame.program in (LSHIFT, RSHIFT):
            shift = -1 if frame.program == LSHIFT else 1
            return (all(p == s + shift for p, s in zip(self.pointers, snap.pointers))
                    and self.ink == snap.ink)
        return False

    def progress(self) -> float:
        """Fraction of the operands' columns, from the units up, that OUT has right."""
        correct = 0
        for col in range(self.width - 2, self.width - 2 - self.num_digits, -1):
            if self.pad[OUT][col] != self._expected_out[col]:
                break
            correct += 1
        return correct / self.num_digits

    # -- expert -------------------------------------------------------------------------------
    def expert_action(self) -> Tuple[int, int, int, int]:
        """NPI's addition trace (Fig. 3b), one call per step, read off the top frame's progress.

        ADD alternates ADD1 and LSHIFT until the column under the pointers is empty. ADD1 writes
        the column's digit, then calls CARRY if the column sum is 10 or more. CARRY moves the
        carry pointer left, writes 1 and moves it back. LSHIFT moves the pointers left, IN1 first.
        """
        frame = self.stack[-1]
        k = frame.steps
        cells = self.cells_under_pointers()
        total = sum(digit_of(cell) for cell in cells[:OUT])
        if frame.program == ADD:
            if k % 2 == 1:
                return (LSHIFT, 0, 0, 0)
            column_empty = all(cell in (BLANK, SENTINEL) for cell in cells[:OUT])
            return (RETURN, 0, 0, 0) if column_empty else (ADD1, 0, 0, 0)
        if frame.program == ADD1:
            if k == 0:
                return (WRITE, OUT, total % 10, 0)
            if k == 1 and total >= 10:
                return (CARRY, 0, 0, 0)
            return (RETURN, 0, 0, 0)
        if frame.program == CARRY:
            plan = [(MOVE_PTR, CARRY_ROW, LEFT, 0), (WRITE, CARRY_ROW, 1, 0),
                    (MOVE_PTR, CARRY_ROW, RIGHT, 0)]
            return plan[k] if k < len(plan) else (RETURN, 0, 0, 0)
        if frame.program in (LSHIFT, RSHIFT):
            direction = LEFT if frame.program == LSHIFT else RIGHT
            return (MOVE_PTR, k, direction, 0) if k < NUM_ROWS else (RETURN, 0, 0, 0)
        return (RETURN, 0, 0, 0)


def random_valid_action(observation: Observation, rng: random.Random) -> Tuple[int, int, int, int]:
    """A uniformly random program among the mask's, each argument uniform over its allowed values
    (the distribution of ``npigym.agents.random``). The call may still fail, e.g. a move off the
    pad."""
    program = rng.choice([p for p, ok in enumerate(observation.action_mask) if ok])
    args = [rng.choice(values) for values in LIBRARY[program].args]
    args += [0] * (len(ARG_SLOT_SIZES) - len(args))
    return (program, args[0], args[1], args[2])
