"""Constants of the addition scratchpad and its programs."""

# Pad rows (and pointer indices): NPI's input 1, input 2, carry and output rows.
IN1, IN2, CARRY, OUT = 0, 1, 2, 3
ROW_NAMES = ("IN1", "IN2", "CARRY", "OUT")
NUM_ROWS = 4

# MOVE_PTR directions.
LEFT, RIGHT = 0, 1
DIRECTION_NAMES = ("LEFT", "RIGHT")

# Cell values: 0 is blank, digit d is stored as d + 1 (as in keras_npi), 11 marks the pad's edges.
BLANK = 0
SENTINEL = 11
NUM_CELL_VALUES = 12

# Columns: [sentinel, blank, carry-out, max_digits digit columns, sentinel]. Pointers start on the
# units column, the rightmost digit column; the blank column lets ADD see the sum is complete.
EXTRA_COLUMNS = 4

# Program ids, in library order (RETURN is always 0).
RETURN, MOVE_PTR, WRITE, ADD, ADD1, CARRY_PROGRAM, LSHIFT, RSHIFT = range(8)

# Agent steps the expert needs per column at most (ADD's two calls, ADD1 with CARRY: 3 + 4,
# LSHIFT: 5); the default step limit is twice the expert's worst case.
EXPERT_STEPS_PER_COLUMN = 14
