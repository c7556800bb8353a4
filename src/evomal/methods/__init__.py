"""The search methods (EvoMAL, GP-LFL, GLO, TaylorGLO, ML3, baseline); see :mod:`.registry`."""
