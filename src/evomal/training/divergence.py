"""One check for a run that blew up, shared by every training and meta-training loop.

Training one model or a population, and the local search for one candidate
or a population, all record their loss values on the device and look at
them every few steps (one host sync per look). A member has diverged when
one of its recorded loss values or one of its parameters is non-finite; the
reason names the first bad step, in the same words in every loop.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def finite_members(tensors: Iterable[Tensor], members: int) -> Tensor:
    """``[K]`` booleans: whether all of member k's entries are finite, for tensors that hold
    the K members on their first dimension (a stacked population's parameters)."""
    finite = torch.ones(members, dtype=torch.bool)
    for tensor in tensors:
        finite = finite & torch.isfinite(tensor.reshape(members, -1)).all(dim=1).cpu()
    return finite


def divergence(
    values: Tensor,
    parameters_finite: Tensor,
    *,
    first_step: int,
    steps_done: int,
    loss: str = "training loss",
    what: str = "parameters",
    unit: str = "step",
) -> list[str | None]:
    """Why each of K members diverged, or ``None`` for those that did not.

    ``values`` holds the loss values of steps ``first_step, first_step + 1, ...``
    as a ``[T, K]`` tensor, and ``parameters_finite`` whether each member's
    parameters are all finite (:func:`finite_members`). A non-finite loss is
    reported at its first step (``"non-finite training loss at step 29"``);
    otherwise non-finite parameters, by the number of steps done
    (``"non-finite phi by meta step 50"``).
    """
    finite_values = torch.isfinite(values).all(dim=0).tolist()
    reasons: list[str | None] = []
    for k, (values_ok, parameters_ok) in enumerate(
        zip(finite_values, parameters_finite.tolist(), strict=True)
    ):
        if not values_ok:
            bad = int(torch.nonzero(~torch.isfinite(values[:, k]))[0]) + first_step
            reasons.append(f"non-finite {loss} at {unit} {bad}")
        elif not parameters_ok:
            reasons.append(f"non-finite {what} by {unit} {steps_done}")
        else:
            reasons.append(None)
    return reasons
