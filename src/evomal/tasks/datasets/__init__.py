"""Dataset loaders: each returns a :class:`evomal.tasks.registry.RawData` (original split)."""
