"""Real photographs for tests: scikit-image's sample images as small uint8 batches."""

import numpy as np
from PIL import Image
from skimage import data


def photos(size: int, *images: np.ndarray) -> np.ndarray:
    """``images`` (default: the astronaut and the cat) resized to ``size`` x ``size`` (bicubic),
    as one uint8 ``(N, size, size, 3)`` batch."""
    images = images or (data.astronaut(), data.chelsea())
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC))
                     for im in images])
