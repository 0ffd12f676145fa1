"""Constants of the bsuite Discounting Chain (Osband et al. 2020, ``discounting_chain``)."""

# Step of the episode at which each context pays its reward (the first action picks the context).
REWARD_STEPS = (1, 3, 10, 30, 100)
NUM_ACTIONS = len(REWARD_STEPS)
# Every episode lasts exactly this many steps and then terminates.
EPISODE_LENGTH = 100
# Every context pays 1.0 except ``mapping_seed``'s (default 3, the one paying at step 30).
BASE_REWARD = 1.0
BONUS = 0.1
DEFAULT_MAPPING_SEED = 3
# The context before the first action.
NO_CONTEXT = -1
