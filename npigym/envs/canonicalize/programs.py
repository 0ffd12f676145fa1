"""The canonicalization library as data (NPI paper, Table 2), ids as in ``constants``."""

from npigym.envs.canonicalize import constants as c
from npigym.envs.machine.library import PRIMITIVE, Arg, Program

DIRECTION = Arg("dir", c.DIRECTION_NAMES)

# NPI's single ACT, its argument selecting the direction, as in the paper. LGOTO etc. may call
# ACT in any direction; their postconditions check that they moved only their own way.
PROGRAMS = (
    Program("ACT", (DIRECTION,), mode=PRIMITIVE,
            doc="rotate the camera 15 degrees LEFT, RIGHT, UP or DOWN"),
    Program("GOTO", calls=("HGOTO", "VGOTO"), doc="bring the camera to the target pose"),
    Program("HGOTO", calls=("LGOTO", "RGOTO"), doc="bring the camera to the target azimuth"),
    Program("VGOTO", calls=("UGOTO", "DGOTO"), doc="bring the camera to the target elevation"),
    Program("LGOTO", calls=("ACT",), doc="rotate left until the azimuth is the target's"),
    Program("RGOTO", calls=("ACT",), doc="rotate right until the azimuth is the target's"),
    Program("UGOTO", calls=("ACT",), doc="rotate up until the elevation is the target's"),
    Program("DGOTO", calls=("ACT",), doc="rotate down until the elevation is the target's"),
)
ROOT = "GOTO"

_NAMES = ("RETURN", *(p.name for p in PROGRAMS))
assert _NAMES.index("ACT") == c.ACT and _NAMES.index("GOTO") == c.GOTO
assert _NAMES.index("LGOTO") == c.LGOTO and _NAMES.index("DGOTO") == c.DGOTO
