"""The program library: a task's programs as data.

A program has a name, up to three arguments, the programs it may call, and a *mode*:

- ``primitive``: changes the task state in one step (NPI's ACT: move a pointer, write a digit).
- ``agent``: the agent executes it. Calling it pushes a frame on the call stack; the agent then
  acts inside that frame until it calls RETURN.
- ``builtin``: executed inside ``step`` by the task's expert (its reference implementation), so
  the agent sees it as one macro action.
- ``skill``: executed inside ``step`` by a *trained policy* bound to it (``ProgramEnv``'s
  ``skills=``), on the task its policy was trained on, so the agent sees it as one macro action
  the way it sees a builtin (``npigym.envs.machine.skill``).
- ``inline``: not an action at all. Its callers may call its callees directly. Making every
  subprogram ``inline`` poses the task *flat* (the root calls primitives only).

RETURN is a program too (id 0 in every library), callable from every frame.

The library is static Python data; :class:`ProgramLibrary` turns it into the numpy tables that the
jitted machine indexes (who may call whom, which argument values are valid, ...).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

PRIMITIVE = "primitive"
AGENT = "agent"
BUILTIN = "builtin"
SKILL = "skill"
INLINE = "inline"
MODES = (PRIMITIVE, AGENT, BUILTIN, SKILL, INLINE)
CALLABLE_MODES = (AGENT, BUILTIN, SKILL, INLINE)

RETURN = "RETURN"
RETURN_ID = 0
NUM_ARGS = 3  # NPI passes a 3-tuple of integer arguments with every call.

# What a program does when it is the action, as small integers the jitted step switches on.
KIND_RETURN, KIND_PRIMITIVE, KIND_CALL, KIND_BUILTIN, KIND_NONE, KIND_SKILL = 0, 1, 2, 3, 4, 5

ModesLike = Union[None, str, Mapping[str, str]]


@dataclasses.dataclass(frozen=True)
class Arg:
    """One argument of a program.

    Attributes:
        name: what the argument means, e.g. ``"row"``.
        values: a name for each value; the argument takes values ``0 .. len(values) - 1``.
        allowed: the values that are valid for this program (all of them when ``None``). WRITE
            takes a row like MOVE_PTR does, so both share the row names, but may only write to
            CARRY and OUT.
    """

    name: str
    values: Tuple[str, ...]
    allowed: Optional[Tuple[int, ...]] = None

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"argument {self.name!r} has no values")
        if self.allowed is not None:
            bad = [v for v in self.allowed if not 0 <= v < len(self.values)]
            if bad or not self.allowed:
                raise ValueError(f"argument {self.name!r}: allowed values {self.allowed} are not "
                                 f"a non-empty subset of 0..{len(self.values) - 1}")

    @property
    def num_values(self) -> int:
        return len(self.values)

    def is_allowed(self, value: int) -> bool:
        """Whether ``value`` is in range and among the allowed values."""
        return 0 <= value < self.num_values and (self.allowed is None or value in self.allowed)


@dataclasses.dataclass(frozen=True)
class Program:
    """A program of a task's library.

    Attributes:
        name: upper-case name as in the NPI paper, e.g. ``"ADD1"``.
        args: its arguments (at most three).
        calls: names of the programs it may call (not RETURN, which every frame may call).
        mode: its default mode (see the module docstring); primitives must say ``primitive``.
        doc: one line on what it does, shown by ``npigym list`` and in the docs.
    """

    name: str
    args: Tuple[Arg, ...] = ()
    calls: Tuple[str, ...] = ()
    mode: str = AGENT
    doc: str = ""

    def __post_init__(self) -> None:
        if len(self.args) > NUM_ARGS:
            raise ValueError(f"program {self.name}: at most {NUM_ARGS} arguments")
        if self.mode not in MODES:
            raise ValueError(f"program {self.name}: mode {self.mode!r} is not one of {MODES}")
        if self.mode == PRIMITIVE and self.calls:
            raise ValueError(f"primitive {self.name} cannot call other programs")
        if self.mode != PRIMITIVE and not self.calls:
            raise ValueError(f"program {self.name} calls nothing; make it a primitive")

    def format_call(self, args: Sequence[int]) -> str:
        """``MOVE_PTR(CARRY, LEFT)`` style text of a call with these argument values."""
        if not self.args:
            return self.name
        parts = []
        for arg, value in zip(self.args, args):
            value = int(value)
            parts.append(arg.values[value] if 0 <= value < arg.num_values else f"?{value}")
        return f"{self.name}({', '.join(parts)})"


_RETURN_PROGRAM = Program(RETURN, mode=PRIMITIVE, doc="end the current program")


class ProgramLibrary:
    """A task's programs with modes applied, and the static tables the machine indexes.

    Program ids are positions in ``programs``; RETURN is always id 0.

    Attributes:
        programs: the programs, RETURN first.
        root: id of the task's top-level program (the first frame of every episode).
        num_programs: number of programs, RETURN included.
        arg_num_values: (3,) size of each argument slot of the action (the largest over programs,
            at least 1).
        arg_valid: (num_programs, 3, max(arg_num_values)) bool, which values of each slot are
            valid for each program. Slots a program does not use accept any value (ignored).
        num_args: (num_programs,) how many arguments each program takes.
        kind: (num_programs,) what calling each program does (``KIND_*``); inline programs have
            ``KIND_NONE`` since they cannot be called.
        callable: (num_programs, num_programs) bool, ``callable[caller, callee]`` after inlining.
        max_depth: frames the deepest chain of calls needs (the call stack's size).
    """

    def __init__(self, programs: Iterable[Program], root: str, modes: ModesLike = None):
        programs = [_RETURN_PROGRAM, *programs]
        names = [p.name for p in programs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate program names {duplicates} (RETURN is added for you)")
        index = {name: i for i, name in enumerate(names)}
        if root not in index:
            raise ValueError(f"root program {root!r} is not in the library {names[1:]}")
        for p in programs:
            unknown = [c for c in p.calls if c not in index or c == RETURN]
            if unknown:
                raise ValueError(f"program {p.name} calls unknown programs {unknown}")

        resolved = resolve_modes(programs, root, modes)
        programs = [dataclasses.replace(p, mode=resolved[p.name]) for p in programs]

        self.programs: Tuple[Program, ...] = tuple(programs)
        self.names: Tuple[str, ...] = tuple(names)
        self._index: Dict[str, int] = index
        self.root: int = index[root]
        self.num_programs: int = len(programs)
        self._check_acyclic()

        slot_sizes = [max([len(p.args[s].values) for p in programs if len(p.args) > s] or [1])
                      for s in range(NUM_ARGS)]
        self.arg_num_values = np.asarray(slot_sizes, np.int32)
        width = int(self.arg_num_values.max())
        valid = np.zeros((self.num_programs, NUM_ARGS, width), bool)
        for i, p in enumerate(programs):
            for s in range(NUM_ARGS):
                if s < len(p.args):
                    for v in range(p.args[s].num_values):
                        valid[i, s, v] = p.args[s].is_allowed(v)
                else:
                    valid[i, s, : slot_sizes[s]] = True
        self.arg_valid = valid
        self.num_args = np.asarray([len(p.args) for p in programs], np.int32)

        kinds = {PRIMITIVE: KIND_PRIMITIVE, AGENT: KIND_CALL, BUILTIN: KIND_BUILTIN,
                 SKILL: KIND_SKILL, INLINE: KIND_NONE}
        self.kind = np.asarray([kinds[p.mode] for p in programs], np.int32)
        self.kind[RETURN_ID] = KIND_RETURN

        self.callable = np.zeros((self.num_programs, self.num_programs), bool)
        for i, p in enumerate(programs):
            if p.mode in (AGENT, INLINE):
                for callee in self._visible_callees(p):
                    self.callable[i, callee] = True
                self.callable[i, RETURN_ID] = True

        # A frame is pushed for the root and for every agent program on a chain of calls; builtin
        # programs push their own subtree while they run, so their full height counts too.
        self.max_depth = self._frames_below(self.root, follow_all=False)
        self.builtin_depth = np.asarray(
            [self._frames_below(i, follow_all=True) if p.mode == BUILTIN else 0
             for i, p in enumerate(programs)], np.int32)
        self.max_depth = max(self.max_depth, self._max_builtin_depth())

    # -- lookups --------------------------------------------------------------------------------
    def id(self, name: str) -> int:
        """The id of a program by name (``KeyError`` with the known names otherwise)."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"no program {name!r}; programs are {list(self.names)}") from None

    def __getitem__(self, key: Union[int, str]) -> Program:
        return self.programs[self.id(key) if isinstance(key, str) else key]

    def __len__(self) -> int:
        return self.num_programs

    def __contains__(self, name: str) -> bool:
        return name in self._index

    @property
    def modes(self) -> Dict[str, str]:
        return {p.name: p.mode for p in self.programs[1:]}

    @property
    def has_builtin(self) -> bool:
        return bool((self.kind == KIND_BUILTIN).any())

    @property
    def has_skill(self) -> bool:
        return bool((self.kind == KIND_SKILL).any())

    @property
    def skill_programs(self) -> Tuple[str, ...]:
        """Names of the programs in ``skill`` mode (each needs a bound skill)."""
        return tuple(p.name for p in self.programs if p.mode == SKILL)

    @property
    def has_inline(self) -> bool:
        return any(p.mode == INLINE for p in self.programs)

    def format_call(self, program: int, args: Sequence[int]) -> str:
        """``MOVE_PTR(CARRY, LEFT)`` style text of a call of program id ``program``."""
        program = int(program)
        if not 0 <= program < self.num_programs:
            return f"?{program}"
        return self.programs[program].format_call(args)

    def describe(self) -> str:
        """A table of the library: id, name, mode, arguments and callees."""
        rows = []
        for i, p in enumerate(self.programs):
            args = ", ".join(
                f"{a.name}:" + "|".join(a.values[v] for v in (a.allowed or range(a.num_values)))
                for a in p.args)
            calls = ", ".join(self.names[j] for j in np.flatnonzero(self.callable[i]) if j)
            rows.append(f"{i:>3}  {p.name:<12} {p.mode:<9} ({args})"
                        + (f" -> {calls}" if calls else ""))
        return "\n".join(rows)

    # -- construction helpers -------------------------------------------------------------------
    def _visible_callees(self, program: Program) -> Iterable[int]:
        for name in program.calls:
            callee = self.programs[self._index[name]]
            if callee.mode == INLINE:
                yield from self._visible_callees(callee)
            else:
                yield self._index[name]

    def _check_acyclic(self) -> None:
        state: Dict[int, int] = {}  # 1: on the current path, 2: done

        def visit(i: int, path: Tuple[str, ...]) -> None:
            if state.get(i) == 1:
                raise ValueError("recursive programs are not supported: "
                                 + " -> ".join((*path, self.names[i])))
            if state.get(i) == 2:
                return
            state[i] = 1
            for name in self.programs[i].calls:
                visit(self._index[name], (*path, self.names[i]))
            state[i] = 2

        for i in range(self.num_programs):
            visit(i, ())

    def _frames_below(self, i: int, follow_all: bool) -> int:
        """Frames on the longest chain of calls from program ``i`` (``i``'s own included).

        With ``follow_all`` every non-primitive callee pushes a frame (a builtin running its
        subtree); otherwise only agent programs do, inline ones are part of their caller's frame
        and builtins are counted separately. A skill runs on its own task's stack, so it needs
        no room on this one.
        """
        p = self.programs[i]
        if p.mode == PRIMITIVE:
            return 0
        deepest = 0
        for name in p.calls:
            j = self._index[name]
            callee = self.programs[j]
            if callee.mode == SKILL and not follow_all:
                continue
            if follow_all or callee.mode == AGENT:
                deepest = max(deepest, self._frames_below(j, follow_all))
            elif callee.mode == INLINE:
                deepest = max(deepest, self._frames_below(j, False) - 1)
        return 1 + deepest

    def _max_builtin_depth(self) -> int:
        """Stack size needed when a builtin runs from the deepest frame that may call it."""
        need = 0
        depth_of = self._frame_depths()
        for caller, d in depth_of.items():
            for callee in np.flatnonzero(self.callable[caller]):
                if self.kind[callee] == KIND_BUILTIN:
                    need = max(need, d + int(self.builtin_depth[callee]))
        return need

    def _frame_depths(self) -> Dict[int, int]:
        """The deepest stack position (1-based) at which each frame-owning program can run."""
        depths = {self.root: 1}
        frontier = [self.root]
        while frontier:
            caller = frontier.pop()
            for callee in np.flatnonzero(self.callable[caller]):
                if self.kind[callee] == KIND_CALL and depths.get(callee, 0) < depths[caller] + 1:
                    depths[int(callee)] = depths[caller] + 1
                    frontier.append(int(callee))
        return depths


def resolve_modes(programs: Sequence[Program], root: str, modes: ModesLike) -> Dict[str, str]:
    """Each program's mode after applying ``modes`` to the library's defaults.

    ``modes`` is ``None`` (the defaults), a preset name, or ``{program_name: mode}``:

    - ``"hierarchical"``: every non-primitive program is executed by the agent (NPI's setting).
    - ``"macro"``: the root is executed by the agent and the programs it calls are builtin, so
      the agent acts at the top level with subprograms as macro actions.
    - ``"flat"``: every program below the root is inline, so the root calls primitives only.

    Raises:
        ValueError: for an unknown preset, program or mode, a primitive given a mode other than
            ``primitive``, or a root that is not agent-executed.
    """
    base = {p.name: p.mode for p in programs}
    composite = [p.name for p in programs if p.mode != PRIMITIVE]
    if modes is None:
        overrides: Dict[str, str] = {}
    elif isinstance(modes, str):
        root_calls = next(p.calls for p in programs if p.name == root)
        presets = {
            "hierarchical": {n: AGENT for n in composite},
            "macro": {n: (AGENT if n == root else BUILTIN if n in root_calls else AGENT)
                      for n in composite},
            "flat": {n: (AGENT if n == root else INLINE) for n in composite},
        }
        if modes not in presets:
            raise ValueError(f"unknown modes preset {modes!r}; presets are {sorted(presets)}, "
                             "or pass a dict {program_name: mode}")
        overrides = presets[modes]
    elif isinstance(modes, Mapping):
        overrides = dict(modes)
    else:
        raise ValueError(f"modes must be None, a preset name or a dict, not {type(modes).__name__}")

    for name, mode in overrides.items():
        if name not in base or name == RETURN:
            raise ValueError(f"modes: no program {name!r}; programs are "
                             f"{[n for n in base if n != RETURN]}")
        if mode not in MODES:
            raise ValueError(f"modes: {name}={mode!r} is not one of {CALLABLE_MODES}")
        if (base[name] == PRIMITIVE) != (mode == PRIMITIVE):
            what = "a primitive" if base[name] == PRIMITIVE else "a program"
            raise ValueError(f"modes: {name} is {what} and cannot be made {mode!r}")
    resolved = {**base, **overrides}
    if resolved[root] != AGENT:
        raise ValueError(f"modes: the root program {root} must be executed by the agent, "
                         f"not {resolved[root]!r}")
    return resolved
