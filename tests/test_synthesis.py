"""The input-optimisation engine: terms against hand computations, optima it must find, batches
equal to single calls, L-BFGS lowering a style loss, and bad requests as ``UsageError``."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from jaxcv.errors import UsageError
from jaxcv.models.layers import Conv, max_pool
from jaxcv.synthesis import (LBFGS, Activation, Adam, Content, ImageL2, Jitter, LayerL2, Network,
                             NormalisedGradient, Objective, Probe, Settings, Style, TotalVariation,
                             gaussian_blur, gram_matrix, l2, optimise, rgb_unit, score, total_variation)
from jaxcv.synthesis.dream import (LOOPS, PRESETS, calibrated, dream_objective, dream_settings, octave_shapes,
                                   optimise_octaves)
from jaxcv.synthesis.filters import best_units, filter_objective, filter_settings, grey_noise, ratio_to_natural
from jaxcv.synthesis.samples import CONTENT_SAMPLES, SAMPLES, STYLE_SAMPLES, load_image
from jaxcv.synthesis.style import STYLE_LAYERS, noise_image, style_objective, style_settings


class TinyVGG(nn.Module):
    """VGG16's shape in miniature: five blocks of 3x3 convs and 2x2 max-pools, VGG's feature names."""

    widths: tuple[int, ...] = (4, 6, 8, 8, 8)
    convs: tuple[int, ...] = (1, 1, 1, 2, 1)

    @nn.compact
    def __call__(self, x, train: bool = False):
        features = {}
        for block, (width, convs) in enumerate(zip(self.widths, self.convs), start=1):
            for i in range(1, convs + 1):
                name = f"conv{block}_{i}"
                x = features[name] = nn.relu(Conv(width, name=name)(x))
            x = max_pool(x)
        return x, features


class LinearUnits(nn.Module):
    """Three linear units over the flattened image: each one's best image is its weights."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = nn.Dense(3, name="fc")(x.reshape(len(x), -1))
        return y, {"fc": y}


def network(model: nn.Module, size: int = 32, preprocess=rgb_unit) -> Network:
    return Network(model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, size, size, 3))), preprocess)


@pytest.fixture(scope="module")
def tiny_vgg() -> Network:
    return network(TinyVGG())


@pytest.fixture(scope="module")
def two_convs() -> Network:
    """Small enough to compile fast where only the engine's bookkeeping is under test."""
    return network(TinyVGG(widths=(4, 8), convs=(1, 1)))


@pytest.fixture(scope="module")
def linear() -> tuple[Network, np.ndarray]:
    net = network(LinearUnits(), size=6)
    return net, np.asarray(net.variables["params"]["fc"]["kernel"]).T.reshape(3, 6, 6, 3)


def test_gram_matrix_is_the_channel_correlation_sum():
    features = np.random.default_rng(0).normal(size=(5, 4, 3)).astype(np.float32)
    direct = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            direct[i, j] = sum(features[y, x, i] * features[y, x, j] for y in range(5) for x in range(4))
    np.testing.assert_allclose(gram_matrix(jnp.asarray(features)), direct, rtol=1e-5)


def test_total_variation_and_l2_by_hand():
    image = jnp.asarray([[0.0, 1.0, 3.0], [2.0, 2.0, 0.0], [1.0, 0.0, 0.0]])[..., None]
    # the 2x2 top-left pixels: (dy^2 + dx^2) = (4 + 1), (1 + 4), (1 + 0), (4 + 4)
    assert total_variation(image, power=1.0) == pytest.approx(5 + 5 + 1 + 8)
    assert total_variation(image) == pytest.approx(2 * 5**1.25 + 1 + 8**1.25, rel=1e-6)
    assert l2(image) == pytest.approx(0 + 1 + 9 + 4 + 4 + 0 + 1 + 0 + 0)
    probe = Probe(image, {})
    assert TotalVariation()(probe, 0) == total_variation(image)
    assert ImageL2()(probe, 0) == l2(image)


def test_feature_terms_by_hand():
    rng = np.random.default_rng(1)
    conv, dense = rng.normal(size=(8, 8, 4)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)
    probe = Probe(jnp.zeros((8, 8, 3)), {"conv": jnp.asarray(conv), "outputs": jnp.asarray(dense)})
    assert Activation("conv")(probe, 2) == pytest.approx(conv[..., 2].mean(), rel=1e-6)
    assert Activation("outputs")(probe, 3) == pytest.approx(dense[3])
    assert LayerL2("conv")(probe, 0) == pytest.approx((conv[2:6, 2:6] ** 2).sum() / conv.size, rel=1e-6)
    target = rng.normal(size=(8, 8, 4)).astype(np.float32)
    assert Content("conv", jnp.asarray(target))(probe, 0) == pytest.approx(((conv - target) ** 2).sum(), rel=1e-5)
    gram_target = rng.normal(size=(4, 4)).astype(np.float32)
    style = Style({"conv": jnp.asarray(gram_target)}, {"conv": jnp.float32(0.5)})
    flat = conv.reshape(-1, 4)
    assert style(probe, 0) == pytest.approx(0.5 * ((flat.T @ flat - gram_target) ** 2).sum(), rel=1e-5)
    objective = Objective(minimise={"tv": TotalVariation()}, maximise={"act": Activation("conv")},
                          weights={"tv": 2.0})
    loss, values = objective(probe, 1)
    assert loss == pytest.approx(2.0 * values["tv"] - values["act"])


@pytest.mark.parametrize("optimiser", [Adam(0.05), LBFGS(evaluations=10)], ids=["adam", "lbfgs"])
def test_a_linear_unit_is_maximised_by_its_own_weights(linear, optimiser):
    network, weights = linear
    # w.x - ||x||^2 / 2 is largest at x = w, for each unit in the batch at once.
    objective = Objective(maximise={"unit": Activation("fc")}, minimise={"l2": ImageL2()}, weights={"l2": 0.5})
    iterations = 300 if isinstance(optimiser, Adam) else 3
    result = optimise(network, objective, jnp.zeros((3, 6, 6, 3)), Settings(iterations, optimiser, clip=False),
                      units=jnp.arange(3))
    np.testing.assert_allclose(result.final, weights, atol=1e-3)
    assert (np.diff(result.terms["unit"], axis=1) > 0).all()


def test_normalised_ascent_moves_along_the_weights(linear):
    network, weights = linear
    start = jnp.full((3, 6, 6, 3), 0.5)
    result = optimise(network, Objective(maximise={"unit": Activation("fc")}), start,
                      Settings(4, NormalisedGradient(step=0.01), clip=False), units=jnp.arange(3))
    moved = (result.final - 0.5).reshape(3, -1)
    expected = weights.reshape(3, -1) / np.sqrt((weights.reshape(3, -1) ** 2).mean(1, keepdims=True))
    np.testing.assert_allclose(moved, 4 * 0.01 * expected, rtol=1e-3, atol=1e-6)
    # Keras' deep-dream noise is taken away again: a linear unit's gradient ignores it.
    noisy = optimise(network, Objective(maximise={"unit": Activation("fc")}), start,
                     Settings(4, NormalisedGradient(step=0.01), noise=0.2, clip=False), units=jnp.arange(3))
    np.testing.assert_allclose(noisy.final, result.final, atol=1e-6)


def test_jitter_keeps_shapes_and_values():
    image = jax.random.uniform(jax.random.key(0), (20, 24, 3))
    key = jax.random.key(1)
    assert Jitter()(key, image) is image
    shifted = Jitter(shift=3)(key, image)
    assert shifted.shape == image.shape
    np.testing.assert_allclose(np.sort(shifted.ravel()), np.sort(image.ravel()))  # a roll: same pixels
    turned = Jitter(shift=2, scale=(0.9, 1.1), rotate=10)(key, image)
    assert turned.shape == image.shape and 0 <= turned.min() and turned.max() <= 1
    np.testing.assert_allclose(Jitter(scale=(1.0, 1.0000001))(key, image), image, atol=1e-4)


def test_gaussian_blur_matches_scipy():
    image = np.random.default_rng(2).random((17, 13, 3)).astype(np.float32)
    expected = ndimage.gaussian_filter(image, sigma=(1.5, 1.5, 0), mode="mirror", truncate=3.0)
    np.testing.assert_allclose(gaussian_blur(jnp.asarray(image), 1.5), expected, atol=1e-5)


@pytest.mark.parametrize("optimiser", [NormalisedGradient(0.02), LBFGS(evaluations=5)], ids=["ascent", "lbfgs"])
def test_a_batch_of_units_equals_one_call_each(two_convs, optimiser):
    settings = Settings(3, optimiser, jitter=Jitter(shift=2), blur=0.5, blur_every=2, snapshots=(1,))
    objective = Objective(maximise={"act": Activation("conv2_1")}, minimise={"tv": TotalVariation()},
                          weights={"tv": 0.01})
    images = jax.random.uniform(jax.random.key(3), (3, 32, 32, 3))
    keys = jax.random.split(jax.random.key(4), 3)
    batch = optimise(two_convs, objective, images, settings, units=jnp.array([0, 5, 7]), key=keys)
    for i, unit in enumerate([0, 5, 7]):
        one = optimise(two_convs, objective, images[i], settings, units=jnp.array([unit]), key=keys[i:i + 1])
        np.testing.assert_allclose(batch.images[i], one.images[0], atol=2e-5)
        np.testing.assert_allclose(batch.loss[i], one.loss[0], rtol=1e-4)
    if not isinstance(optimiser, LBFGS):  # in chunks of 2: the same again
        chunked = optimise(two_convs, objective, images, settings, units=jnp.array([0, 5, 7]), key=keys, batch_size=2)
        np.testing.assert_allclose(chunked.images, batch.images, atol=2e-5)


def test_snapshots_are_the_images_of_shorter_runs(two_convs):
    objective = filter_objective("conv2_1")
    images = grey_noise(jax.random.key(5), 2, size=32)
    long = optimise(two_convs, objective, images, filter_settings(iterations=4, snapshots=(2,)), units=jnp.arange(2))
    short = optimise(two_convs, objective, images, filter_settings(iterations=2), units=jnp.arange(2))
    assert long.iterations == (0, 2, 4) and long.images.shape == (2, 3, 32, 32, 3)
    assert (long.evaluations == 1).all() and long.loss.shape == (2, 5)
    np.testing.assert_allclose(long.at(2), short.final, atol=1e-6)
    np.testing.assert_allclose(long.at(0), images)
    assert best_units(long).tolist() == list(np.argsort(-long.terms["activation"][:, -1]))


def test_lbfgs_lowers_a_style_loss():
    # On a 0-255 input, where Keras' weights were tuned: a smooth content, a striped style.
    caffe_like = network(TinyVGG(), preprocess=lambda x: x * 255 - 128)
    yy, xx = np.mgrid[:32, :32] / 32
    content = np.stack([yy, xx, np.full_like(xx, 0.5)], -1).astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * (xx + yy))
    style = (stripes[..., None] * np.array([1.0, 0.5, 0.2])).astype(np.float32)
    objective = style_objective(caffe_like, content, style)
    assert set(objective.layers) == {"conv4_2", *STYLE_LAYERS}
    result = optimise(caffe_like, objective, noise_image(jax.random.key(7), (32, 32)), style_settings(iterations=5))
    style_loss = result.terms["style"][0]
    assert style_loss[-1] < style_loss[0] / 10
    assert (np.diff(result.loss[0]) < 0).all()
    # scipy's maxfun=20: each iteration stops at the end of the line search that passes 20 evaluations
    assert ((result.evaluations > 20) & (result.evaluations <= 40)).all()


def test_deep_dream_octaves_put_back_the_lost_detail(two_convs):
    dream = dataclasses.replace(PRESETS["dreamy"], layers={"conv2_1": 0.05, "conv1_1": 0.02})
    image = jax.random.uniform(jax.random.key(8), (48, 40, 3))
    results = optimise_octaves(two_convs, lambda shape: dream_objective(dream, shape), image,
                               Settings(2, NormalisedGradient(0.01), clip=False), octaves=2, scale=1.5)
    assert [r.final.shape[1:3] for r in results] == [(32, 27), (48, 40)]
    for result in results:
        assert result.loss[0, -1] < result.loss[0, 0]
    # The second octave starts from the first's dream enlarged plus the detail shrinking lost.
    small = jax.image.resize(image, (32, 27, 3), "cubic")
    lost = image - jax.image.resize(small, (48, 40, 3), "cubic")
    start = jax.image.resize(results[0].final[0], (48, 40, 3), "cubic") + lost
    np.testing.assert_allclose(results[1].at(0)[0], start, atol=1e-5)
    assert octave_shapes((600, 600), 3, 1.4) == [(306, 306), (429, 429), (600, 600)]


def test_calibrated_dream_weights_are_relative_to_the_photograph(two_convs):
    dream = dataclasses.replace(PRESETS["dreamy"], layers={"conv2_1": 0.05, "conv1_1": 0.02})
    photograph = jax.random.uniform(jax.random.key(9), (48, 40, 3))
    for shape in [(48, 40, 3), (32, 27, 3)]:  # at every octave, the photograph resized to it
        objective = calibrated(two_convs, dream, photograph)(shape)
        terms = score(two_convs, objective, jax.image.resize(photograph, shape, "cubic")[None])
        assert {t: objective.weights[t] * terms[t][0] for t in terms} == pytest.approx(
            {"dream_conv2_1": 0.05, "dream_conv1_1": 0.02, "continuity": 0.1, "dream_l2": 0.02}, rel=1e-5)
    with pytest.raises(UsageError, match="continuity is 0 on the photograph at 48x40"):
        calibrated(two_convs, dream, jnp.full((48, 40, 3), 0.5))  # a flat image has no total variation
    ascent = LOOPS["ascent"].settings(PRESETS["bad_trip"])
    assert (ascent.iterations, ascent.optimiser, ascent.jitter.shift, ascent.noise, ascent.clip) == (
        10, NormalisedGradient(1.5 / 255), 32, 5 / 255, True)
    assert LOOPS["keras"].settings(PRESETS["bad_trip"]) == dream_settings(PRESETS["bad_trip"])


def test_keras_presets():
    bad_trip = dream_settings(PRESETS["bad_trip"])
    assert (bad_trip.iterations, bad_trip.optimiser, bad_trip.noise) == (5, LBFGS(evaluations=7), 5 / 255)
    objective = dream_objective(PRESETS["dreamy"], (600, 600, 3))
    assert objective.weights == {"dream_conv5_1": 0.05, "dream_conv5_2": 0.02,
                                 "continuity": 0.1 / (600 * 600 * 3), "dream_l2": 0.02 / (600 * 600 * 3)}
    assert style_settings().optimiser == LBFGS(evaluations=20) and not style_settings().clip
    assert filter_settings().optimiser == NormalisedGradient(1 / 255) and filter_settings().iterations == 20


def test_bad_requests_are_usage_errors(tiny_vgg):
    image = jnp.zeros((32, 32, 3))
    act = Activation("conv5_1")
    with pytest.raises(UsageError, match="weight of 'tv' is -1.0"):
        optimise(tiny_vgg, Objective(maximise={"a": act}, minimise={"tv": TotalVariation()}, weights={"tv": -1.0}),
                 image)
    with pytest.raises(UsageError, match="weight of layer 'conv1_1' is -2.0"):
        optimise(tiny_vgg, Objective(minimise={"s": Style({"conv1_1": jnp.zeros((4, 4))},
                                                          {"conv1_1": jnp.float32(-2)})}), image)
    with pytest.raises(UsageError, match="iterations is -1"):
        Settings(iterations=-1)
    with pytest.raises(UsageError, match="evaluations is 0"):
        LBFGS(evaluations=0)
    with pytest.raises(UsageError, match="step is -0.1"):
        NormalisedGradient(step=-0.1)
    for not_a_number in (  # a check written x < 0 would let NaN through
            lambda: NormalisedGradient(step=float("nan")), lambda: Settings(blur=float("nan")),
            lambda: Jitter(rotate=float("nan")), lambda: octave_shapes((48, 48), 2, float("nan"))):
        with pytest.raises(UsageError, match="is nan.*finite|nan must be finite"):
            not_a_number()
    with pytest.raises(UsageError, match=r"snapshot iteration\(s\) \[30\]"):
        Settings(iterations=20, snapshots=(30,))
    with pytest.raises(UsageError, match=r"unknown layer\(s\) block5_conv1 .*valid: conv1_1, conv2_1"):
        optimise(tiny_vgg, Objective(maximise={"a": Activation("block5_conv1")}), image)
    with pytest.raises(UsageError, match=r"8x8 image is too small for layer\(s\) conv5_1 .*at least 16x16"):
        optimise(tiny_vgg, Objective(maximise={"a": act}), jnp.zeros((8, 8, 3)))
    with pytest.raises(UsageError, match=r"unit\(s\) 0..8 out of range for conv5_1, which has units 0..7"):
        optimise(tiny_vgg, Objective(maximise={"a": act}), jnp.zeros((9, 32, 32, 3)), units=jnp.arange(9))
    with pytest.raises(UsageError, match="2 units for 1 images"):
        optimise(tiny_vgg, Objective(maximise={"a": act}), image, units=jnp.arange(2))


def test_a_fixed_size_network_rejects_another_size(linear):
    network, _ = linear
    with pytest.raises(UsageError, match="a 7x7 image does not fit LinearUnits"):
        optimise(network, Objective(maximise={"a": Activation("fc")}), jnp.zeros((7, 7, 3)))


def test_samples_load_offline_and_paths_are_checked(tmp_path):
    assert set(CONTENT_SAMPLES) | set(STYLE_SAMPLES) <= set(SAMPLES)
    coffee = load_image("coffee", rows=100)  # 400x600 in the wheel
    assert coffee.shape == (100, 150, 3) and coffee.dtype == np.float32 and 0 <= coffee.min() <= coffee.max() <= 1
    assert load_image("gravel", shape=(100, 150)).shape == (100, 150, 3)  # a grey texture, as RGB
    with pytest.raises(UsageError, match="nope.jpg: no such image file, nor a sample name"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(UsageError, match="rows is 0"):
        load_image("coffee", rows=0)


def test_ratio_to_natural_floors_silent_units_at_the_layer_mean():
    natural = np.array([0.0, 4.0, 2.0, 2.0])  # unit 0 silent on natural images; the layer's mean is 2
    ratio = ratio_to_natural(np.array([10.0, 10.0, 10.0]), natural, np.array([0, 1, 2]))
    np.testing.assert_allclose(ratio, [5.0, 2.5, 5.0])
    assert np.isnan(ratio_to_natural(np.array([1.0]), np.array([0.0, -1.0]), np.array([0]))[0])
