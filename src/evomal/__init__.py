"""evomal: learn loss functions for PyTorch models (EvoMAL and the methods it is compared with)."""

from evomal.losses import LearnedLoss, LossFileError
from evomal.search import SearchResult, resume, search

__version__ = "0.1.0"

__all__ = ["LearnedLoss", "LossFileError", "SearchResult", "__version__", "resume", "search"]
