"""Constants of the dot-product task."""

from npigym.envs.multiplication import constants as multiplication

# Program ids: Multiplication's library (itself Addition's, then COMMIT, NEXT, MUL) is a
# prefix; the dot product's own programs follow.
MUL = multiplication.MUL
NEXT_PAIR, DOT = 11, 12
NUM_PROGRAMS = 13

# At most 9 pairs: the sum of k products of two n-digit numbers has at most 2n + 1 digits.
MAX_PAIRS = 9
# Columns: Multiplication's layout with one more digit column for the sum of the products.
EXTRA_COLUMNS = multiplication.EXTRA_COLUMNS + 1
