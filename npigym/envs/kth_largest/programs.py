"""KthLargest-v0's library: Sorting's programs (same ids, a prefix), then KJMP and KTH."""

from npigym.envs.kth_largest import constants as c
from npigym.envs.machine.library import BUILTIN, Program
from npigym.envs.sorting.programs import PROGRAMS as SORTING_PROGRAMS

PROGRAMS = (
    *SORTING_PROGRAMS,
    Program("KJMP", calls=("RSHIFT", "LSHIFT"),
            doc="move pointers 1 and 2 together onto cell length - k"),
    Program("KTH", calls=("BUBBLESORT", "KJMP"),
            doc="BUBBLESORT, then KJMP: pointers 1 and 2 end on the k-th largest value"),
)
ROOT = "KTH"
# The default posing, as Max-v0's: the sorting core's programs that the new ones call are
# learned skills (builtin); the agent executes the new programs, KTH and KJMP.
SKILL_MODES = {"BUBBLESORT": BUILTIN, "RSHIFT": BUILTIN, "LSHIFT": BUILTIN}

_NAMES = ("RETURN", *(p.name for p in PROGRAMS))
assert _NAMES.index("KJMP") == c.KJMP and _NAMES.index("KTH") == c.KTH
assert len(_NAMES) == c.NUM_KTH_PROGRAMS
