"""The addition library as data (NPI paper, Table 2), ids as in ``constants``."""

from npigym.envs.addition import constants as c
from npigym.envs.machine.library import PRIMITIVE, Arg, Program

ROW = Arg("row", c.ROW_NAMES)
WRITABLE_ROW = Arg("row", c.ROW_NAMES, allowed=(c.CARRY, c.OUT))
DIRECTION = Arg("dir", c.DIRECTION_NAMES)
DIGIT = Arg("digit", tuple("0123456789"))

# NPI's single ACT is split into two primitives, as in keras_npi and siddk/npi.
PROGRAMS = (
    Program("MOVE_PTR", (ROW, DIRECTION), mode=PRIMITIVE, doc="move a row's pointer one column"),
    Program("WRITE", (WRITABLE_ROW, DIGIT), mode=PRIMITIVE,
            doc="write a digit under the CARRY or OUT pointer"),
    Program("ADD", calls=("ADD1", "LSHIFT"), doc="add IN1 and IN2 into OUT, column by column"),
    Program("ADD1", calls=("MOVE_PTR", "WRITE", "CARRY"),
            doc="write the current column's digit, carrying if needed"),
    Program("CARRY", calls=("MOVE_PTR", "WRITE"), doc="write a 1 in the next column's carry cell"),
    Program("LSHIFT", calls=("MOVE_PTR",), doc="move all four pointers one column left"),
    # Listed in the paper's table though ADD never calls it; kept for libraries built on this one.
    Program("RSHIFT", calls=("MOVE_PTR",), doc="move all four pointers one column right"),
)
ROOT = "ADD"

_NAMES = ("RETURN", *(p.name for p in PROGRAMS))
assert _NAMES.index("MOVE_PTR") == c.MOVE_PTR and _NAMES.index("RSHIFT") == c.RSHIFT
assert _NAMES.index("CARRY") == c.CARRY_PROGRAM and _NAMES.index("ADD") == c.ADD
