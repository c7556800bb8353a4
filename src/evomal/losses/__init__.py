"""Learned loss representations as drop-in ``torch.nn.Module`` criteria, with JSON save/load.

* :class:`LearnedLoss`: a symbolic expression tree with edge weights (EvoMAL, GP-LFL, GLO);
* :class:`TaylorLoss`: a third-order Taylor polynomial (TaylorGLO);
* :class:`NeuralLoss`: a small network over (f(x), y) (ML3).
"""

from evomal.losses.document import LossFileError
from evomal.losses.io import load_loss, loss_from_dict
from evomal.losses.learned import LearnedLoss
from evomal.losses.neural import NeuralLoss
from evomal.losses.taylor import TaylorLoss

__all__ = [
    "LearnedLoss",
    "LossFileError",
    "NeuralLoss",
    "TaylorLoss",
    "load_loss",
    "loss_from_dict",
]
