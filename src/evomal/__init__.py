"""evomal: learn loss functions for PyTorch models (EvoMAL and the methods it is compared with)."""

from evomal.losses import LearnedLoss, LossFileError

__version__ = "0.1.0"

__all__ = ["LearnedLoss", "LossFileError", "__version__"]
