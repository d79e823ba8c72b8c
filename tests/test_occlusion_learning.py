"""Occlusion on a classifier that learned for real: the patch that hurts most lies on the shape."""

import numpy as np

from jaxcv import inspection
from jaxcv.models import get_model
from jaxcv.train import fit, make_optimizer, predict

PATCH = STRIDE = 8  # 9 x 9 positions tiling the 72 x 72 image


def _overlaps(mask: np.ndarray, tops: np.ndarray) -> np.ndarray:
    """Per image, whether the patch starting at ``tops`` (row, column) covers any shape pixel."""
    return np.array([m[r:r + PATCH, c:c + PATCH].any() for m, (r, c) in zip(mask, tops)])


def test_the_most_damaging_patch_lies_on_the_shape(shapes_hard):
    """On ``shapes/hard`` the ink is at most 0.3 / 1.3 of full scale and the background at least
    1 / 1.3, so the pixels darker than mid-grey are the shape (every fully inked pixel and no
    blank one, checked against the generator's coverage for the whole test split)."""
    train, test = shapes_hard
    state = fit(get_model("shapes_deep_cnn"), train, None, optimizer=make_optimizer("adam", 1e-3), epochs=3,
                batch_size=32, progress=False).state
    images, labels = test["image"][:48], test["label"][:48]
    correct = predict(state, images).argmax(-1) == labels
    fill = train["image"].mean() / 255  # Zeiler & Fergus' grey: the training set's mean
    maps = inspection.occlusion(state.model, state.variables(), images, labels, patch=PATCH, stride=STRIDE, fill=fill)
    mask = images[..., 0] < 128
    on_shape = _overlaps(mask, np.asarray(inspection.worst_patches(maps.true_prob, STRIDE)))
    assert correct.sum() >= 40
    assert on_shape[correct].mean() >= 0.9
    # ... where a patch placed at random would touch the shape far less often
    starts = np.asarray(inspection.positions(72, PATCH, STRIDE))
    every = np.stack([_overlaps(mask, np.tile([r, c], (len(mask), 1))) for r in starts for c in starts], 1)
    assert every.mean() < 0.5
