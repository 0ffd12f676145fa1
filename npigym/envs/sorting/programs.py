"""The sorting and MAX libraries as data (NPI paper, Table 2), ids as in ``constants``.

NPI's single ACT is split into the primitives MOVE_PTR and SWAP, and each program may call only
the primitives its trace uses (as Addition's LSHIFT calls MOVE_PTR but not WRITE): COMPSWAP can
only swap and the shifts can only move pointers, which keeps their postconditions exact.
"""

from npigym.envs.machine.library import BUILTIN, PRIMITIVE, Arg, Program
from npigym.envs.sorting import constants as c

POINTER = Arg("ptr", c.POINTER_NAMES)
DIRECTION = Arg("dir", c.DIRECTION_NAMES)

PROGRAMS = (
    Program("MOVE_PTR", (POINTER, DIRECTION), mode=PRIMITIVE,
            doc="move a pointer one cell (not off the array)"),
    Program("SWAP", mode=PRIMITIVE, doc="swap the values under pointers 1 and 2"),
    # The paper's table gives BUBBLESORT -> {BUBBLE, RESET}; its trace (Cai et al. 2017, Fig. 2)
    # has BUBBLESORT itself advance the pass counter after each RESET, hence MOVE_PTR here.
    Program("BUBBLESORT", calls=("BUBBLE", "RESET", "MOVE_PTR"),
            doc="sort the array: a BUBBLE, RESET, PTR 3 RIGHT cycle per pass"),
    Program("BUBBLE", calls=("MOVE_PTR", "BSTEP"),
            doc="one bubble pass: PTR 2 RIGHT, then BSTEP until pointer 1 is at the end"),
    Program("RESET", calls=("LSHIFT",), doc="move pointers 1 and 2 back to the start"),
    Program("BSTEP", calls=("COMPSWAP", "RSHIFT"), doc="COMPSWAP, then RSHIFT"),
    Program("COMPSWAP", calls=("SWAP",),
            doc="swap the values under pointers 1 and 2 if they are out of order"),
    Program("LSHIFT", calls=("MOVE_PTR",),
            doc="move pointers 1 and 2 one cell left (those not at the start)"),
    Program("RSHIFT", calls=("MOVE_PTR",),
            doc="move pointers 1 and 2 one cell right (those not at the end)"),
)
ROOT = "BUBBLESORT"

# NPI section 4.3: MAX is learned on top of a fixed core that already sorts.
MAX_PROGRAMS = (
    *PROGRAMS,
    Program("RJMP", calls=("RSHIFT",), doc="move pointers 1 and 2 to the right end"),
    Program("MAX", calls=("BUBBLESORT", "RJMP"),
            doc="BUBBLESORT, then RJMP: the pointers end on the maximum"),
)
MAX_ROOT = "MAX"
# Max-v0's default posing: the core's programs that the new ones call are learned skills
# (builtin); the agent executes the new programs, MAX and RJMP.
MAX_SKILL_MODES = {"BUBBLESORT": BUILTIN, "RSHIFT": BUILTIN}

_NAMES = ("RETURN", *(p.name for p in MAX_PROGRAMS))
assert _NAMES == ("RETURN", "MOVE_PTR", "SWAP", "BUBBLESORT", "BUBBLE", "RESET", "BSTEP",
                  "COMPSWAP", "LSHIFT", "RSHIFT", "RJMP", "MAX")
assert _NAMES.index("RSHIFT") == c.RSHIFT and _NAMES.index("MAX") == c.MAX
assert len(PROGRAMS) + 1 == c.NUM_SORTING_PROGRAMS
