"""Constants of the multiplication scratchpad and its programs."""

from npigym.envs.addition import constants as addition

# Pad rows: the multiplicand, the multiplier, the running total (the product when done), and
# the carry and output rows that ADD writes (as Addition's CARRY and OUT).
A, B, ACC, CARRY, OUT = range(5)
ROW_NAMES = ("A", "B", "ACC", "CARRY", "OUT")
NUM_ROWS = 5

# Cells as in Addition: 0 blank, digit d stored as d + 1, 11 the pad's edges.
BLANK, SENTINEL, NUM_CELL_VALUES = addition.BLANK, addition.SENTINEL, addition.NUM_CELL_VALUES
ZERO = 1  # the cell value of the digit 0
# Columns: [edge, blank, carry-out, max_digits + max_multiplier_digits digit columns, edge], so
# the Addition view of the pad has Addition's layout with room for the whole product.
EXTRA_COLUMNS = addition.EXTRA_COLUMNS

# Program ids. Addition's library is a prefix (same ids), so a program id means the same in
# both libraries; Multiplication's own programs follow.
(RETURN, MOVE_PTR, WRITE, ADD, ADD1, CARRY_PROGRAM, LSHIFT, RSHIFT, COMMIT, NEXT,
 MUL) = range(11)
NUM_ADDITION_PROGRAMS = 8
NUM_PROGRAMS = 11

# The local view shows additions made at the current digit up to this count.
MAX_REPS = 9

# Two primes below 2**16 for the residue check of a product (products of residues fit uint32).
PRIMES = (65521, 65519)

# Agent steps of the hierarchical expert for one addition of D-digit operands (Addition's worst
# case per column, 14, over D + 1 columns, ADD's RETURN), plus MUL's ADD and COMMIT calls.
ADD_STEPS_PER_COLUMN = addition.EXPERT_STEPS_PER_COLUMN
