"""NPI's bubble sort (``Sorting-v0``) and MAX (``Max-v0``) on the program machine."""

from npigym.envs.sorting.env import Max, Sorting
from npigym.envs.sorting.generator import ArrayGenerator, RandomGenerator, SortingGenerator
from npigym.envs.sorting.types import FullView, Snapshot, SortPad
from npigym.envs.sorting.viewer import SortingViewer

__all__ = [
    "ArrayGenerator",
    "FullView",
    "Max",
    "RandomGenerator",
    "Snapshot",
    "SortPad",
    "Sorting",
    "SortingGenerator",
    "SortingViewer",
]
