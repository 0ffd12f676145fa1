"""The multiplication library: Addition's programs, then COMMIT, NEXT and MUL.

MUL is long multiplication by place value: for each digit ``b`` of the multiplier (units
first), add the multiplicand shifted to that digit's place into the running total ``b`` times,
then move to the next digit. The additions are Addition's ADD, unchanged, on a view of the pad
(the running total as IN1, the shifted multiplicand as IN2), so a policy trained on
Addition-v0 runs inside MUL as a skill.
"""

from npigym.envs.addition.programs import PROGRAMS as ADDITION_PROGRAMS
from npigym.envs.machine.library import BUILTIN, PRIMITIVE, Program
from npigym.envs.multiplication import constants as c

PROGRAMS = (
    *ADDITION_PROGRAMS,
    Program("COMMIT", mode=PRIMITIVE,
            doc="the sum in OUT becomes the running total; OUT and CARRY are cleared"),
    Program("NEXT", mode=PRIMITIVE, doc="move to the multiplier's next digit"),
    Program("MUL", calls=("ADD", "COMMIT", "NEXT"),
            doc="ACC += A * B: per multiplier digit b, b times ADD and COMMIT, then NEXT"),
)
ROOT = "MUL"
# Multiplication-v0's default posing: ADD, the skill it reuses, is a macro action (the
# expert's, or a learned policy's with skills={"ADD": ...}); the agent executes MUL.
DEFAULT_MODES = {"ADD": BUILTIN}

_NAMES = ("RETURN", *(p.name for p in PROGRAMS))
assert _NAMES.index("COMMIT") == c.COMMIT and _NAMES.index("MUL") == c.MUL
assert _NAMES.index("RSHIFT") == c.RSHIFT and len(_NAMES) == c.NUM_PROGRAMS
