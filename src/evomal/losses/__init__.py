"""Learned loss representations as drop-in ``torch.nn.Module`` criteria, with JSON save/load."""

from evomal.losses.document import LossFileError
from evomal.losses.learned import LearnedLoss

__all__ = ["LearnedLoss", "LossFileError"]
