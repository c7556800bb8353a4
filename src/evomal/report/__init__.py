"""Tables and plots built from run and experiment directories (reads files only)."""
