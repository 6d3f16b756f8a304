"""Image grids, metrics and the sampling/editing operations behind evaluate.py."""
