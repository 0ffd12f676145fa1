"""Test configuration shared by the whole suite."""

import os

# No screen in CI: matplotlib must not look for one (jumanji imports pyplot on import).
os.environ.setdefault("MPLBACKEND", "Agg")
