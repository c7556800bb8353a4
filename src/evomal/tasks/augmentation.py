"""Per-batch data augmentation on the device: random crop with padding,
horizontal flip and per-channel normalisation.

Augmentation runs on whole batches of image tensors ``[B, C, H, W]`` where the
data already lives, drawing its randomness from a ``torch.Generator`` that the
training loop seeds, so the same seed gives the same augmented batches. The
normalisation statistics are fitted on the training split only.

Presets follow the paper's standard augmentation (Section 4.2): CIFAR uses
crop (padding 4), flip and normalisation; SVHN crop and normalisation (flipping
digits changes them); MNIST normalisation only. The authors' code flips SVHN
images too: ``svhn_flip`` (crop, flip, normalisation) reproduces that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from evomal.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class Augmentation:
    """What to do to each training batch (and, for normalisation, every batch).

    ``crop_padding``: zero-pad each side by this many pixels, then crop back
    to the original size at a random offset per sample (0 disables).
    ``flip``: mirror each sample horizontally with probability 1/2.
    ``normalise``: subtract the per-channel mean and divide by the standard
    deviation of the training split (fitted by :meth:`fitted`).
    """

    crop_padding: int = 0
    flip: bool = False
    normalise: bool = False
    mean: Tensor | None = None
    std: Tensor | None = None

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise ConfigError(f"crop_padding must be >= 0, got {self.crop_padding}")

    @property
    def is_identity(self) -> bool:
        return not (self.crop_padding or self.flip or self.normalise)

    @property
    def randomised(self) -> bool:
        """Whether training batches need random numbers (crop or flip)."""
        return bool(self.crop_padding or self.flip)

    def fitted(self, train_x: Tensor) -> Augmentation:
        """Fit normalisation statistics on the training inputs (per channel of ``[N, C, ...]``)."""
        if not self.normalise:
            return self
        if train_x.ndim < 3:
            raise ConfigError("per-channel normalisation needs image inputs shaped [N, C, H, W]")
        dims = [0, *range(2, train_x.ndim)]
        mean = train_x.mean(dim=dims, keepdim=True)[0:1]
        std = train_x.std(dim=dims, keepdim=True)[0:1]
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        return replace(self, mean=mean, std=std)

    def to(self, device: torch.device | str) -> Augmentation:
        if self.mean is None or self.std is None:
            return self
        return replace(self, mean=self.mean.to(device), std=self.std.to(device))

    def train_batch(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Augment a training batch: crop, flip, normalise."""
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        return self.eval_batch(x)

    def eval_batch(self, x: Tensor) -> Tensor:
        """Prepare an evaluation batch: normalisation only."""
        if self.normalise:
            if self.mean is None or self.std is None:
                raise RuntimeError("normalisation statistics are not fitted; call fitted(train_x)")
            x = (x - self.mean) / self.std
        return x

    def describe(self) -> dict[str, Any]:
        return {"crop_padding": self.crop_padding, "flip": self.flip, "normalise": self.normalise}


def random_crop(x: Tensor, padding: int, generator: torch.Generator | None) -> Tensor:
    """Zero-pad ``[B, C, H, W]`` by ``padding`` and crop back at a random offset per sample."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices around a slice put the indexed dims first: [B, H, W, C].
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def random_flip(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Mirror each sample of ``[B, C, H, W]`` horizontally with probability 1/2."""
    mask = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


PRESETS: dict[str, Augmentation] = {
    "none": Augmentation(),
    "mnist": Augmentation(normalise=True),
    "cifar": Augmentation(crop_padding=4, flip=True, normalise=True),
    "svhn": Augmentation(crop_padding=4, normalise=True),
    "svhn_flip": Augmentation(crop_padding=4, flip=True, normalise=True),
}


def get_augmentation(name: str) -> Augmentation:
    """A preset by name: ``none``, ``mnist``, ``cifar`` or ``svhn``."""
    if name not in PRESETS:
        raise UnknownNameError(
            f"unknown augmentation preset {name!r}; expected one of {sorted(PRESETS)}"
        )
    return PRESETS[name]
