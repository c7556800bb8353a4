"""Augmentation: vectorised crop/flip against a per-sample loop, normalisation statistics."""

import pytest
import torch
import torch.nn.functional as F

from evomal.tasks import Augmentation, get_augmentation
from evomal.tasks.augmentation import random_crop, random_flip


def test_random_crop_matches_per_sample_slicing():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    gen = torch.Generator().manual_seed(5)
    out = random_crop(x, 2, gen)
    offsets = torch.randint(0, 5, (2, 16), generator=torch.Generator().manual_seed(5))
    padded = F.pad(x, (2, 2, 2, 2))
    for b in range(16):
        r, c = offsets[0, b], offsets[1, b]
        assert torch.equal(out[b], padded[b, :, r : r + 8, c : c + 8])
    assert len({(int(a), int(b)) for a, b in offsets.T}) > 1  # offsets really vary


def test_random_flip_matches_per_sample_flip():
    x = torch.rand(32, 1, 4, 5)
    out = random_flip(x, torch.Generator().manual_seed(1))
    mask = torch.rand(32, generator=torch.Generator().manual_seed(1)) < 0.5
    for b in range(32):
        assert torch.equal(out[b], x[b].flip(-1) if mask[b] else x[b])
    assert 0 < int(mask.sum()) < 32


def test_normalisation_fits_training_channels():
    x = torch.rand(100, 3, 6, 6) * torch.tensor([1.0, 2.0, 3.0])[:, None, None]
    aug = Augmentation(normalise=True).fitted(x)
    out = aug.eval_batch(x)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    with pytest.raises(RuntimeError, match="not fitted"):
        Augmentation(normalise=True).eval_batch(x)


def test_train_batch_is_deterministic_under_a_seed():
    x = torch.rand(8, 3, 10, 10)
    aug = get_augmentation("cifar").fitted(x)
    a = aug.train_batch(x, torch.Generator().manual_seed(3))
    b = aug.train_batch(x, torch.Generator().manual_seed(3))
    c = aug.train_batch(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_presets():
    assert get_augmentation("cifar").describe() == {
        "crop_padding": 4,
        "flip": True,
        "normalise": True,
    }
    assert not get_augmentation("svhn").flip
    assert get_augmentation("none").is_identity
    with pytest.raises(ValueError, match="unknown augmentation"):
        get_augmentation("imagenet")
