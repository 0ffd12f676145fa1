"""Constants of the canonicalization task: the pose grid, ACT's directions, program ids."""

# Poses live on NPI's 15-degree grid. Azimuth wraps around: index a is a * 15 degrees
# (0 = the camera in front of the object, increasing as the camera orbits to its right).
DEGREES_PER_STEP = 15
NUM_AZIMUTHS = 24
HALF_TURN = NUM_AZIMUTHS // 2

# Elevation is bounded: level e is e * 15 degrees, 0 (level with the car) to 90 (from above);
# the camera stays above the ground the car stands on. Its one-hot has a slot for every level,
# whatever the env's bounds, so networks can move between configurations.
MIN_ELEVATION_LEVEL = 0
MAX_ELEVATION_LEVEL = 6
NUM_ELEVATIONS = MAX_ELEVATION_LEVEL - MIN_ELEVATION_LEVEL + 1

# ACT's directions. LEFT / RIGHT orbit the camera 15 degrees to its left / right (azimuth - 1 /
# + 1), UP / DOWN raise / lower it 15 degrees (elevation + 1 / - 1).
LEFT, RIGHT, UP, DOWN = 0, 1, 2, 3
DIRECTION_NAMES = ("LEFT", "RIGHT", "UP", "DOWN")
NUM_DIRECTIONS = 4

# Program ids, in library order (RETURN is always 0).
RETURN, ACT, GOTO, HGOTO, VGOTO, LGOTO, RGOTO, UGOTO, DGOTO = range(9)

# The paper's training distribution (NPI section 4.3): start azimuth -75..75 and elevation
# 0..60 degrees, target azimuth 0 and elevation 15.
DEFAULT_AZIMUTH_RANGE = (-75, 75)
DEFAULT_ELEVATION_RANGE = (0, 60)
DEFAULT_TARGET = (0, 15)
DEFAULT_IMAGE_SIZE = 32
DEFAULT_NUM_MODELS = 64
