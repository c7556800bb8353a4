"""Analyses of learned losses that train models (paper Section 5; GLO/TaylorGLO claims)."""
