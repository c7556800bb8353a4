"""Check that a figure is a real picture: a PNG that decodes and is not blank."""

import numpy as np
from matplotlib.image import imread


def assert_real_image(path_or_bytes, tmp_path=None):
    """A PNG that decodes, is more than a sliver, and has more than two colours."""
    if isinstance(path_or_bytes, bytes):
        assert path_or_bytes.startswith(b"\x89PNG")
        target = tmp_path / "image.png"
        target.write_bytes(path_or_bytes)
        path_or_bytes = target
    pixels = imread(path_or_bytes)
    assert pixels.shape[0] > 20 and pixels.shape[1] > 20
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 2
