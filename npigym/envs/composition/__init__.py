"""Composition: tasks whose libraries reuse other tasks' programs (and their learned skills).

:class:`Embedding` lifts a task's programs into a host library through a view of the host's
state; the composition tasks themselves live in their own folders (``multiplication``,
``dot_product``, ``kth_largest``; ``Max-v0`` in ``sorting``).
"""

from npigym.envs.composition.embedding import Embedding

__all__ = ["Embedding"]
