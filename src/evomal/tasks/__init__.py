"""Tasks: datasets as on-device tensor splits, base models, and augmentation."""

from evomal.tasks.augmentation import Augmentation, get_augmentation
from evomal.tasks.registry import DATASETS, EMBEDDED, get_task, task_names
from evomal.tasks.task import HiddenTestSplitError, Split, Task

__all__ = [
    "DATASETS",
    "EMBEDDED",
    "Augmentation",
    "HiddenTestSplitError",
    "Split",
    "Task",
    "get_augmentation",
    "get_task",
    "task_names",
]
