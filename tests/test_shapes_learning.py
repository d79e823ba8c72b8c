"""Report 004's bars, learned for real on the embedded shapes (CPU, a few short epochs each),
and occlusion on a classifier that learned for real: the patch that hurts most lies on the shape."""

import numpy as np
import pytest

from jaxcv import inspection
from jaxcv.data import denoise_pairs, vertex_targets
from jaxcv.models import get_model
from jaxcv.models.layers import use_conv_impl
from jaxcv.train import (classification, evaluate_arrays, fit, host_batches, make_optimizer, predict, psnr,
                         reconstruction, vertex_regression)

pytestmark = pytest.mark.optimized  # they train for real: conftest.py


@pytest.fixture(scope="module", autouse=True)
def xla_chunked():
    """These 72 x 72 models train 1.3-2.5x faster with ``xla_chunked`` than with jax 0.10's CPU
    default, im2col (the README's advice for report 004's studies); with jax 0.11 it is the default."""
    with use_conv_impl("xla_chunked"):
        yield


PATCH = STRIDE = 8  # 9 x 9 positions tiling the 72 x 72 image


def _trained(name, train, epochs, batch_size=32, loss_fn=classification):
    return fit(get_model(name), train, None, optimizer=make_optimizer("adam", 1e-3), epochs=epochs,
               batch_size=batch_size, loss_fn=loss_fn, progress=False)


def _scores(state, test, loss_fn=classification):
    """Metrics on ``test``, prefixed ``val_`` as ``fit`` logs them."""
    return {f"val_{k}": v for k, v in evaluate_arrays(state, test, loss_fn=loss_fn, batch_size=64).items()}


def _fit(name, train, test, epochs, batch_size=32, loss_fn=classification):
    """Train, then score on ``test`` once."""
    return _scores(_trained(name, train, epochs, batch_size, loss_fn).state, test, loss_fn)


@pytest.fixture(scope="module")
def deep_cnn(shapes_hard):
    """Report 004's deep CNN (with BatchNorm), three epochs on ``shapes/hard`` streamed from the
    host (the path of sets that do not fit on the device; the other models here, and real MNIST,
    learn on device-held sets): two tests judge it."""
    return _trained("shapes_deep_cnn", host_batches(shapes_hard[0], 32), epochs=3)


def test_deep_cnn_solves_the_hard_task_and_the_linear_model_does_not(shapes_hard, deep_cnn):
    train, test = shapes_hard
    deep = _scores(deep_cnn.state, test)
    linear = _fit("shapes_linear", train, test, epochs=3)
    assert deep["val_accuracy"] >= 0.90  # 0.98 here, as on a device-held set
    h = deep_cnn.history
    assert [r["epoch"] for r in h] == [1, 2, 3] and h[2]["train_loss"] < h[1]["train_loss"] < h[0]["train_loss"]
    assert deep_cnn.compile_seconds > 0 and all(r["epoch_seconds"] > 0 for r in h)
    assert linear["val_accuracy"] <= deep["val_accuracy"] - 0.2


def test_sorting_the_vertices_lowers_the_regression_error(shapes_triangles):
    train, test = shapes_triangles
    train = {k: v[:1000] for k, v in train.items()}
    errors = {sort: _fit("vertex_regressor", vertex_targets(train, sort), vertex_targets(test, sort), epochs=2,
                         loss_fn=vertex_regression) for sort in (True, False)}
    # lower both against each variant's own targets and in the order-free matched MSE
    assert errors[True]["val_loss"] < 0.8 * errors[False]["val_loss"]
    assert errors[True]["val_matched_mse"] < 0.8 * errors[False]["val_matched_mse"]


def test_hourglass_raises_psnr_over_the_noisy_input(shapes_denoise):
    train, test = (denoise_pairs(s) for s in shapes_denoise)
    train = {k: v[:512] for k, v in train.items()}
    final = _fit("hourglass", train, test, epochs=4, batch_size=16, loss_fn=reconstruction)
    noisy = float(np.mean(psnr(test["image"], test["target"])))
    assert final["val_psnr"] > noisy + 5  # dB


def _overlaps(mask: np.ndarray, tops: np.ndarray) -> np.ndarray:
    """Per image, whether the patch starting at ``tops`` (row, column) covers any shape pixel."""
    return np.array([m[r:r + PATCH, c:c + PATCH].any() for m, (r, c) in zip(mask, tops)])


def test_the_most_damaging_patch_lies_on_the_shape(shapes_hard, deep_cnn):
    """On ``shapes/hard`` the ink is at most 0.3 / 1.3 of full scale and the background at least
    1 / 1.3, so the pixels darker than mid-grey are the shape (every fully inked pixel and no
    blank one, checked against the generator's coverage for the whole test split)."""
    train, test = shapes_hard
    state = deep_cnn.state
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
