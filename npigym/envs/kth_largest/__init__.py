"""``KthLargest-v0``: the k-th largest value of an array, KTH = BUBBLESORT then KJMP."""

from npigym.envs.kth_largest.env import KthLargest
from npigym.envs.kth_largest.generator import KthGenerator
from npigym.envs.kth_largest.types import FullView, KthPad
from npigym.envs.kth_largest.viewer import KthLargestViewer

__all__ = ["FullView", "KthGenerator", "KthLargest", "KthLargestViewer", "KthPad"]
