"""What meta-testing reports beyond the task metric: per-class errors and memorisation.

Under class imbalance a reader needs the error and the balanced error side by
side, and each class's error. Under label noise the question is how much of
the noise the model learned: *memorisation* is the fraction of flipped
training samples that the trained model predicts with their noisy label
(``recovered``: with their true label), the quantity robust losses keep low.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from evomal.tasks.task import Split, Task


def predicted_labels(model: nn.Module, split: Split, task: Task, batch_size: int = 1024) -> Tensor:
    """The class ``model`` predicts for every sample of ``split`` (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(split), batch_size):
                logits = model(task.augmentation.eval_batch(split.x[start : start + batch_size]))
                if logits.ndim == 1 or logits.shape[-1] == 1:
                    out.append((logits.reshape(-1) > 0).to(torch.long))
                else:
                    out.append(logits.argmax(dim=-1))
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def class_errors(predicted: Tensor, labels: Tensor, n_classes: int) -> dict[str, Any]:
    """Error rate, balanced error (mean over present classes) and each class's error rate.

    A class absent from ``labels`` has no error rate (``None``).
    """
    labels = labels.reshape(-1).to(torch.long)
    wrong = (predicted.reshape(-1) != labels).to(torch.get_default_dtype())
    counts = torch.bincount(labels, minlength=n_classes)
    misses = torch.bincount(labels, weights=wrong, minlength=n_classes)
    per_class = [
        None if int(n) == 0 else float(m) / int(n)
        for n, m in zip(counts.tolist(), misses.tolist(), strict=True)
    ]
    present = [v for v in per_class if v is not None]
    return {
        "error": float(wrong.mean()) if len(wrong) else None,
        "balanced_error": sum(present) / len(present) if present else None,
        "per_class_error": per_class,
    }


def memorisation(model: nn.Module, task: Task) -> dict[str, Any] | None:
    """How the trained model labels the flipped training samples (``None`` without noise)."""
    flipped = task.train.flipped
    if flipped is None:
        return None
    index = torch.nonzero(flipped).reshape(-1)
    if index.numel() == 0:
        return {"flipped": 0, "memorised": None, "recovered": None}
    noisy = Split(task.train.x[index], task.train.y[index])
    predicted = predicted_labels(model, noisy, task)
    clean = task.train.y_clean[index]  # type: ignore[index]
    return {
        "flipped": int(index.numel()),
        "memorised": float((predicted == noisy.y).to(torch.float64).mean()),
        "recovered": float((predicted == clean).to(torch.float64).mean()),
    }


def test_diagnostics(model: nn.Module, task: Task) -> dict[str, Any]:
    """Test error, balanced error and per-class errors, and memorisation, for a classifier."""
    if task.kind != "classification":
        return {}
    test = task.test
    details = {
        f"test_{k}": v
        for k, v in class_errors(
            predicted_labels(model, test, task), test.y, task.n_classes
        ).items()
    }
    remembered = memorisation(model, task)
    if remembered is not None:
        details["memorisation"] = remembered
    return details
