"""The program library: modes, call tables, argument validity, validation errors."""

import numpy as np
import pytest

from npigym.envs.addition.programs import PROGRAMS, ROOT
from npigym.envs.machine.library import (
    KIND_BUILTIN,
    KIND_CALL,
    KIND_NONE,
    KIND_PRIMITIVE,
    KIND_RETURN,
    PRIMITIVE,
    Arg,
    Program,
    ProgramLibrary,
)


def callees(lib, name):
    return sorted(lib.names[j] for j in np.flatnonzero(lib.callable[lib.id(name)]))


def test_library__hierarchical_follows_the_paper():
    lib = ProgramLibrary(PROGRAMS, ROOT)
    assert lib.names[0] == "RETURN" and lib.root == lib.id("ADD")
    assert callees(lib, "ADD") == ["ADD1", "LSHIFT", "RETURN"]
    assert callees(lib, "ADD1") == ["CARRY", "MOVE_PTR", "RETURN", "WRITE"]
    assert callees(lib, "MOVE_PTR") == []  # primitives own no frame
    assert lib.kind[0] == KIND_RETURN and lib.kind[lib.id("WRITE")] == KIND_PRIMITIVE
    assert lib.kind[lib.id("CARRY")] == KIND_CALL
    assert lib.max_depth == 3  # ADD -> ADD1 -> CARRY


def test_library__macro_and_flat_presets():
    macro = ProgramLibrary(PROGRAMS, ROOT, "macro")
    assert macro.kind[macro.id("ADD1")] == KIND_BUILTIN
    assert macro.kind[macro.id("LSHIFT")] == KIND_BUILTIN
    assert macro.max_depth == 3  # a builtin ADD1 still pushes CARRY while it runs
    flat = ProgramLibrary(PROGRAMS, ROOT, "flat")
    assert callees(flat, "ADD") == ["MOVE_PTR", "RETURN", "WRITE"]
    assert flat.kind[flat.id("ADD1")] == KIND_NONE
    assert flat.max_depth == 1 and flat.has_inline and not flat.has_builtin


def test_library__partial_inline_lifts_callees_into_the_caller():
    lib = ProgramLibrary(PROGRAMS, ROOT, {"CARRY": "inline"})
    assert callees(lib, "ADD1") == ["MOVE_PTR", "RETURN", "WRITE"]
    assert lib.max_depth == 2


def test_library__argument_tables():
    lib = ProgramLibrary(PROGRAMS, ROOT)
    np.testing.assert_array_equal(lib.arg_num_values, [4, 10, 1])
    write, move = lib.id("WRITE"), lib.id("MOVE_PTR")
    np.testing.assert_array_equal(lib.arg_valid[write, 0, :4], [False, False, True, True])
    assert lib.arg_valid[write, 1, :10].all()
    np.testing.assert_array_equal(lib.arg_valid[move, 1, :3], [True, True, False])
    assert lib.arg_valid[lib.id("ADD"), :, 0].all()  # unused slots accept anything
    assert lib.format_call(write, [3, 7, 0]) == "WRITE(OUT, 7)"
    assert lib.format_call(lib.id("ADD1"), [0, 0, 0]) == "ADD1"
    assert "MOVE_PTR" in lib.describe()


def program(name, calls=(), **kw):
    return Program(name, calls=calls, **kw)


LEAF = Program("ACT", mode=PRIMITIVE)


@pytest.mark.parametrize("programs, root, modes, match", [
    ([LEAF, program("A", ("ACT",)), program("A", ("ACT",))], "A", None, "duplicate"),
    ([LEAF, program("A", ("NOPE",))], "A", None, "unknown programs"),
    ([LEAF, program("A", ("B",)), program("B", ("A",))], "A", None, "recursive"),
    ([LEAF, program("A", ("ACT",))], "Z", None, "root program"),
    ([LEAF, program("A", ("ACT",))], "A", "sideways", "unknown modes preset"),
    ([LEAF, program("A", ("ACT",))], "A", {"A": "builtin"}, "must be executed by the agent"),
    ([LEAF, program("A", ("ACT",))], "A", {"ACT": "agent"}, "is a primitive"),
    ([LEAF, program("A", ("B", "ACT")), program("B", ("ACT",))], "A", {"B": "primitive"},
     "is a program"),
    ([LEAF, program("A", ("ACT",))], "A", {"Q": "agent"}, "no program 'Q'"),
    ([LEAF, program("A", ("ACT",))], "A", {"A": "sometimes"}, "is not one of"),
    ([LEAF, program("A", ("ACT",))], "A", 3, "modes must be"),
])
def test_library__bad_libraries_raise_clear_errors(programs, root, modes, match):
    with pytest.raises(ValueError, match=match):
        ProgramLibrary(programs, root, modes)


def test_program_and_arg__validate_themselves():
    with pytest.raises(ValueError, match="at most 3"):
        Program("X", tuple(Arg(f"a{i}", ("0",)) for i in range(4)), mode=PRIMITIVE)
    with pytest.raises(ValueError, match="cannot call"):
        Program("X", calls=("Y",), mode=PRIMITIVE)
    with pytest.raises(ValueError, match="calls nothing"):
        Program("X")
    with pytest.raises(ValueError, match="mode"):
        Program("X", calls=("Y",), mode="later")
    with pytest.raises(ValueError, match="allowed"):
        Arg("row", ("A", "B"), allowed=(2,))
    with pytest.raises(ValueError, match="no values"):
        Arg("row", ())
