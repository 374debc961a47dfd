"""SciPy's own test files for the least-squares solvers, run in place against jacobite."""
