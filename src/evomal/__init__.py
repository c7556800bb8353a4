"""evomal: learn loss functions for PyTorch models (EvoMAL and the methods it is compared with).

The public API, in one place::

    from evomal import search, resume, get_task, build_config, load_loss

    task = get_task("digits")                      # or csv:PATH, npz:PATH, your own Task
    result = search(task, "mlp", build_config("quick"), out="runs/digits")
    loss = result.best                             # a torch.nn.Module criterion

Everything else lives in submodules and may change between versions.
"""

from evomal.config import SearchConfig, build_config
from evomal.errors import (
    ConfigError,
    DataError,
    DataMissingError,
    EvomalError,
    LossFileError,
    ModelError,
    RunDirectoryError,
    RunDirectoryInUse,
    UnknownNameError,
)
from evomal.losses import LearnedLoss, load_loss
from evomal.losses.document import OnlineSettings
from evomal.methods.meta_test import meta_test
from evomal.search import SearchResult, resume, search
from evomal.tasks import Task, get_task
from evomal.tasks.models.source import register_model
from evomal.training.online import OnlineHook

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DataMissingError",
    "EvomalError",
    "LearnedLoss",
    "LossFileError",
    "ModelError",
    "OnlineHook",
    "OnlineSettings",
    "RunDirectoryError",
    "RunDirectoryInUse",
    "SearchConfig",
    "SearchResult",
    "Task",
    "UnknownNameError",
    "__version__",
    "build_config",
    "get_task",
    "load_loss",
    "meta_test",
    "register_model",
    "resume",
    "search",
]
