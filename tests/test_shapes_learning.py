"""Report 004's bars, learned for real on the embedded shapes (CPU, a few short epochs each)."""

import numpy as np

from jaxcv.data import denoise_pairs, vertex_targets
from jaxcv.models import get_model
from jaxcv.train import classification, evaluate_arrays, fit, make_optimizer, psnr, reconstruction, vertex_regression


def _fit(name, train, test, epochs, batch_size=32, loss_fn=classification):
    """Train, then score on ``test`` once (metrics prefixed ``val_``, as ``fit`` logs them)."""
    state = fit(get_model(name), train, None, optimizer=make_optimizer("adam", 1e-3), epochs=epochs,
                batch_size=batch_size, loss_fn=loss_fn, progress=False).state
    return {f"val_{k}": v for k, v in evaluate_arrays(state, test, loss_fn=loss_fn, batch_size=64).items()}


def test_deep_cnn_solves_the_hard_task_and_the_linear_model_does_not(shapes_hard):
    train, test = shapes_hard
    deep = _fit("shapes_deep_cnn", train, test, epochs=3)
    linear = _fit("shapes_linear", train, test, epochs=3)
    assert deep["val_accuracy"] >= 0.90
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
