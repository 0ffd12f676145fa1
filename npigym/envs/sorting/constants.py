"""Constants of the sorting array, its pointers and its programs."""

# Pointers: 1 and 2 are NPI's bubble pointers (SWAP exchanges their values), 3 counts passes.
P1, P2, P3 = 0, 1, 2
POINTER_NAMES = ("P1", "P2", "P3")
NUM_POINTERS = 3

# MOVE_PTR directions.
LEFT, RIGHT = 0, 1
DIRECTION_NAMES = ("LEFT", "RIGHT")

# Cells: value v is stored as v + 1 and 0 marks the blank cells beyond the instance's length, so
# the full view tells the array from the padding (Addition's encoding). Pointers never leave the
# array, so the values under them are never blank.
BLANK = 0

# Program ids, in library order (RETURN is always 0). Max's library appends RJMP and MAX to the
# sorting library, so the shared programs keep their ids in both.
(RETURN, MOVE_PTR, SWAP, BUBBLESORT, BUBBLE, RESET, BSTEP, COMPSWAP, LSHIFT, RSHIFT,
 RJMP, MAX) = range(12)
NUM_SORTING_PROGRAMS = 10
NUM_MAX_PROGRAMS = 12

# Local view layout: the values under pointers 1 and 2, then (at start, at end) per pointer.
NUM_LOCAL_FEATURES = 2 + 2 * NUM_POINTERS

# Knob bounds. Values are drawn from 16-bit halves of hash words (``scale16``), hence at most
# 65,536 distinct values; twice the expert's worst case must fit the int32 step counter, which
# holds up to length 9,000 or so.
MAX_VALUE_LIMIT = 65535
MAX_LENGTH_LIMIT = 8192
DEFAULT_MIN_LENGTH = 2
DEFAULT_MAX_LENGTH = 10
DEFAULT_MAX_VALUE = 9
