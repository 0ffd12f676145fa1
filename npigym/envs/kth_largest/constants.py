"""Constants of KthLargest-v0: Sorting's (a prefix of the library) plus KJMP, KTH and the view."""

from npigym.envs.sorting.constants import NUM_LOCAL_FEATURES as NUM_SORTING_FEATURES
from npigym.envs.sorting.constants import NUM_POINTERS, NUM_SORTING_PROGRAMS

# Program ids: Sorting's library (ids 0-9) unchanged, then the two new programs, so a policy
# trained on Sorting-v0 executes BUBBLESORT here with the same ids.
KJMP, KTH = NUM_SORTING_PROGRAMS, NUM_SORTING_PROGRAMS + 1
NUM_KTH_PROGRAMS = NUM_SORTING_PROGRAMS + 2

# Where a pointer is relative to the target cell ``length - k`` (one local feature per bubble
# pointer).
LEFT_OF_TARGET, ON_TARGET, RIGHT_OF_TARGET = 0, 1, 2
NUM_TARGET_SIDES = 3

# Local view layout: Sorting's 8 features, then the target side of pointers 1 and 2.
NUM_LOCAL_FEATURES = NUM_SORTING_FEATURES + 2

# Salt of the hash word k is drawn from, unrelated to the words the array is drawn from.
K_SALT = 0x27D4EB2F

__all__ = ["KJMP", "KTH", "K_SALT", "LEFT_OF_TARGET", "NUM_KTH_PROGRAMS", "NUM_LOCAL_FEATURES",
           "NUM_POINTERS", "NUM_SORTING_FEATURES", "NUM_TARGET_SIDES", "ON_TARGET",
           "RIGHT_OF_TARGET"]
