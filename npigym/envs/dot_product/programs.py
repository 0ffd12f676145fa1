"""The dot-product library: Multiplication's programs, then NEXT_PAIR and DOT.

Three generations deep: DOT calls MUL, which calls ADD. MUL is a multiply-accumulate
(``ACC += A * B``), so DOT is ``for each pair: MUL; NEXT_PAIR``, the position paper's linear
layer in miniature.
"""

from npigym.envs.dot_product import constants as c
from npigym.envs.machine.library import BUILTIN, PRIMITIVE, Program
from npigym.envs.multiplication.programs import PROGRAMS as MULTIPLICATION_PROGRAMS

PROGRAMS = (
    *MULTIPLICATION_PROGRAMS,
    Program("NEXT_PAIR", mode=PRIMITIVE, doc="move to the vectors' next pair of numbers"),
    Program("DOT", calls=("MUL", "NEXT_PAIR"),
            doc="ACC = sum of x_i * y_i: MUL each pair, NEXT_PAIR between them"),
)
ROOT = "DOT"
# DotProduct-v0's default posing: MUL (with ADD inside it) is a macro action; the agent
# executes DOT. Bind learned skills with skills={"MUL": ...}.
DEFAULT_MODES = {"MUL": BUILTIN}

_NAMES = ("RETURN", *(p.name for p in PROGRAMS))
assert _NAMES.index("MUL") == c.MUL and _NAMES.index("DOT") == c.DOT
assert len(_NAMES) == c.NUM_PROGRAMS
