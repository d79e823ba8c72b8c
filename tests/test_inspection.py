"""Inspection functions on small models whose answers are known: exact filters, a model that
sees one pixel, a linear model's gradients, a CAM network's Grad-CAM, separable clusters."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcv import inspection, runs
from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.models.layers import Conv


class TinyCNN(nn.Module):
    """conv1 3x3 same (RGB -> 4), conv2 3x3 valid (4 -> 4), global mean, dense 3."""

    @nn.compact
    def __call__(self, x, train=False):
        feats = {}
        x = feats["conv1"] = nn.relu(Conv(4, name="conv1")(x))
        x = feats["conv2"] = nn.relu(Conv(4, padding="VALID", name="conv2")(x))
        x = feats["pooled"] = x.mean(axis=(1, 2))
        return nn.Dense(3, name="fc")(x), feats


class OnePixel(nn.Module):
    """Two-class logits from the single pixel (5, 7)."""

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(2, name="fc")(x[:, 5, 7, :]), {}


class CamNet(nn.Module):
    """Zhou et al.'s CAM network: a linear conv, global average pooling, dense."""

    @nn.compact
    def __call__(self, x, train=False):
        maps = Conv(5, name="conv1")(x)
        return nn.Dense(3, name="fc")(maps.mean(axis=(1, 2))), {"conv1": maps}


def _init(model, shape, seed=0):
    return model.init(jax.random.key(seed), jnp.zeros((1, *shape)))


@pytest.fixture(scope="module")
def tiny():
    model = TinyCNN()
    images = np.random.default_rng(0).integers(0, 256, (5, 10, 10, 3), dtype=np.uint8)
    return model, _init(model, (10, 10, 3)), images


def _with_kernel(variables, layer, kernel):
    params = jax.tree.map(lambda a: a, dict(variables["params"]))
    params[layer] = {**params[layer], "kernel": jnp.asarray(kernel)}
    return {**variables, "params": params}


def _cell(mosaic, i, cols, h, w, pad=1):
    row, col = divmod(i, cols)
    return mosaic[row * (h + pad): row * (h + pad) + h, col * (w + pad): col * (w + pad) + w]


def test_filter_grid_returns_a_known_kernel_exactly(tiny):
    _, variables, _ = tiny
    kernel = np.arange(3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4) - 50.0
    variables = _with_kernel(variables, "conv1", kernel)
    top = np.abs(kernel).max()
    mosaic = np.asarray(inspection.filter_grid(variables, "conv1", cols=2))
    assert mosaic.shape == (2 * 4 - 1, 2 * 4 - 1, 3) and mosaic.dtype == np.float32
    channels = np.asarray(inspection.filter_grid(variables, "conv1", per_channel=True, cols=2))
    assert channels.shape == (3, 7, 7, 1)
    stretched = np.asarray(inspection.filter_grid(variables, "conv1", scale="filter", cols=2))
    for i in range(4):
        np.testing.assert_allclose(_cell(mosaic, i, 2, 3, 3), 0.5 + kernel[..., i] / (2 * top), rtol=0, atol=1e-7)
        for c in range(3):
            np.testing.assert_allclose(_cell(channels[c], i, 2, 3, 3)[..., 0], 0.5 + kernel[:, :, c, i] / (2 * top),
                                       atol=1e-7)
        f = kernel[..., i]
        np.testing.assert_allclose(_cell(stretched, i, 2, 3, 3), (f - f.min()) / (f.max() - f.min()), atol=1e-6)
    assert (mosaic[3] == 1.0).all() and (mosaic[:, 3] == 1.0).all()  # the white gaps between cells


def test_filter_change_measures_how_far_each_filter_moved(tiny):
    _, before, _ = tiny
    kernel = np.asarray(before["params"]["conv1"]["kernel"])
    moved = kernel.copy()
    moved[0, 0, 0, 2] += 3.0
    change = inspection.filter_change(before, _with_kernel(before, "conv1", moved), "conv1", cols=4)
    np.testing.assert_allclose(change.distance, [0, 0, 3, 0], atol=1e-6)
    np.testing.assert_allclose(change.relative[2], 3.0 / np.linalg.norm(kernel[..., 2]), rtol=1e-5)
    assert change.before.shape == change.after.shape == (3, 4 * 4 - 1, 3)
    # one scale for both: the filters that did not move look the same in both mosaics
    np.testing.assert_array_equal(_cell(change.before, 0, 4, 3, 3), _cell(change.after, 0, 4, 3, 3))
    assert not np.array_equal(_cell(change.before, 2, 4, 3, 3), _cell(change.after, 2, 4, 3, 3))


def test_activations_are_the_named_features_however_batched(tiny):
    model, variables, images = tiny
    _, feats = model.apply(variables, images.astype(np.float32) / 255)
    for batch_size in (2, 5, 64):
        maps = inspection.activations(model, variables, images, "conv2", batch_size=batch_size)
        assert maps.shape == (5, 8, 8, 4) and maps.dtype == jnp.float32
        np.testing.assert_allclose(maps, feats["conv2"], rtol=1e-5, atol=1e-6)


def test_activation_grid_stretches_each_map_into_its_cell():
    maps = np.random.default_rng(1).normal(size=(2, 5, 6, 3)).astype(np.float32)
    grids = np.asarray(inspection.activation_grid(maps, cols=3))
    assert grids.shape == (2, 5, 3 * 7 - 1, 1)
    for n in range(2):
        for c in range(3):
            m = maps[n, ..., c]
            np.testing.assert_allclose(_cell(grids[n], c, 3, 5, 6)[..., 0], (m - m.min()) / (m.max() - m.min()),
                                       atol=1e-6)
    shared = np.asarray(inspection.activation_grid(maps, scale="image", cols=3))
    assert shared[0].max() == 1.0 and shared[0].min() == 0.0
    with pytest.raises(UsageError, match=r"\(N, H, W, C\) feature maps, got shape \(2, 4\)"):
        inspection.activation_grid(np.zeros((2, 4)))


def test_features_default_to_the_last_named_layer(tiny):
    model, variables, images = tiny
    _, feats = model.apply(variables, images.astype(np.float32) / 255)
    np.testing.assert_allclose(inspection.features(model, variables, images, batch_size=2), feats["pooled"],
                               rtol=1e-5, atol=1e-6)
    conv1 = inspection.features(model, variables, images, "conv1")
    assert conv1.shape == (5, 10 * 10 * 4) and conv1.dtype == jnp.float32


def _reference_knn(points, labels, k):
    """Leave-one-out k-NN by brute force in NumPy, ties to the nearest neighbour's class."""
    d = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    correct = []
    for i in range(len(points)):
        nearest = np.argsort(d[i], kind="stable")[:k]
        votes = np.bincount(labels[nearest], minlength=labels.max() + 1).astype(float)
        votes[labels[nearest[0]]] += 0.5
        correct.append(np.argmax(votes) == labels[i])
    return float(np.mean(correct))


def test_knn_accuracy_is_one_for_clusters_chance_for_shuffled_labels_and_exact():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    points = rng.normal(size=(600, 2)) * 0.3 + np.array([[0, 0], [10, 0], [0, 10]])[labels]
    assert inspection.knn_accuracy(points, labels) == 1.0
    shuffled = inspection.knn_accuracy(points, rng.permutation(labels))
    assert abs(shuffled - 1 / 3) < 0.08
    noisy = rng.normal(size=(97, 2))
    noisy_labels = rng.integers(0, 4, 97)
    for k, batch_size in ((1, 1024), (5, 7), (6, 97)):
        assert inspection.knn_accuracy(noisy, noisy_labels, k, batch_size=batch_size) == pytest.approx(
            _reference_knn(noisy, noisy_labels, k))
    with pytest.raises(UsageError, match="k must be in"):
        inspection.knn_accuracy(noisy, noisy_labels, k=97)


def test_tsne_keeps_separate_clusters_separate():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    points = rng.normal(size=(120, 20)) + 8 * np.eye(20)[labels]
    embedding = inspection.tsne(points, perplexity=20)
    assert embedding.shape == (120, 2) and embedding.dtype == np.float32
    assert inspection.knn_accuracy(embedding, labels) >= 0.95


def test_occlusion_of_a_one_pixel_model_changes_only_where_the_patch_hides_that_pixel():
    model = OnePixel()
    variables = _init(model, (12, 12, 1))
    images = np.random.default_rng(0).uniform(0.7, 1.0, (3, 12, 12, 1)).astype(np.float32)
    maps = inspection.occlusion(model, variables, images, np.array([0, 1, 0]), patch=3, stride=1)
    assert maps.true_prob.shape == (3, 10, 10) and maps.top_class.dtype == jnp.int32
    change = np.asarray(maps.clear_prob)[:, None, None] - np.asarray(maps.true_prob)
    top, left = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    covers = (top <= 5) & (5 < top + 3) & (left <= 7) & (7 < left + 3)
    assert (change[:, ~covers] == 0).all()
    assert (np.abs(change[:, covers]) > 1e-4).all()


def test_occlusion_equals_occluding_by_hand_and_does_not_depend_on_batching(tiny):
    model, variables, images = tiny
    labels = np.array([0, 1, 2, 1, 0])
    maps = inspection.occlusion(model, variables, images, labels, patch=4, stride=3, fill=0.25)
    assert maps.true_prob.shape == (5, 3, 3)  # rows/cols start at 0, 3, 6
    for n, (i, j) in ((0, (0, 0)), (3, (1, 2)), (4, (2, 1))):
        hidden = images[n].astype(np.float32) / 255
        hidden[3 * i: 3 * i + 4, 3 * j: 3 * j + 4] = 0.25
        probs = jax.nn.softmax(model.apply(variables, hidden[None])[0][0])
        assert maps.true_prob[n, i, j] == pytest.approx(float(probs[labels[n]]), rel=1e-5)
        assert maps.top_prob[n, i, j] == pytest.approx(float(probs.max()), rel=1e-5)
        assert maps.top_class[n, i, j] == int(probs.argmax())
    again = inspection.occlusion(model, variables, images, labels, patch=4, stride=3, fill=0.25, batch_size=7)
    np.testing.assert_allclose(again.true_prob, maps.true_prob, rtol=1e-5)
    alone = inspection.occlusion(model, variables, images[3:4], labels[3:4], patch=4, stride=3, fill=0.25)
    np.testing.assert_allclose(alone.true_prob[0], maps.true_prob[3], rtol=1e-5)
    predicted = inspection.occlusion(model, variables, images, patch=4, stride=3)  # each image's mean colour
    np.testing.assert_array_equal(predicted.classes, np.argmax(model.apply(variables, images / 255.0)[0], -1))
    hidden = images[4].astype(np.float32) / 255
    hidden[6:10, 3:7] = hidden.mean(axis=(0, 1))
    probs = jax.nn.softmax(model.apply(variables, hidden[None])[0][0])
    assert predicted.true_prob[4, 2, 1] == pytest.approx(float(probs[predicted.classes[4]]), rel=1e-5)


def test_worst_patches_are_the_least_probable_positions():
    true_prob = np.ones((2, 3, 4), np.float32)
    true_prob[0, 1, 3] = 0.1
    true_prob[1, 2, 0] = 0.2
    np.testing.assert_array_equal(inspection.worst_patches(true_prob, stride=2), [[2, 6], [4, 0]])


def test_saliency_of_a_linear_model_is_its_weights():
    model = get_model("shapes_linear", num_classes=3)
    variables = _init(model, (8, 8, 2))
    images = np.random.default_rng(0).uniform(size=(4, 8, 8, 2)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    kernel = np.asarray(variables["params"]["fc1"]["kernel"])
    gradients = inspection.input_gradients(model, variables, images, labels, batch_size=3)
    assert gradients.shape == (4, 8, 8, 2) and gradients.dtype == jnp.float32
    for n, label in enumerate(labels):
        np.testing.assert_allclose(gradients[n], kernel[:, label].reshape(8, 8, 2), rtol=1e-6)
    np.testing.assert_allclose(inspection.saliency(model, variables, images, labels),
                               np.abs(gradients).max(-1), rtol=1e-6)


def test_grad_cam_of_a_cam_network_is_its_class_activation_map():
    model = CamNet()
    variables = _init(model, (6, 6, 2))
    images = np.random.default_rng(0).uniform(size=(3, 6, 6, 2)).astype(np.float32)
    labels = np.array([2, 0, 1])
    cam = inspection.grad_cam(model, variables, images, labels, layer="conv1", batch_size=2)
    maps = np.asarray(model.apply(variables, images)[1]["conv1"])
    weights = np.asarray(variables["params"]["fc"]["kernel"])[:, labels].T / 36  # d logit / d map, per channel
    np.testing.assert_allclose(cam, np.maximum(np.einsum("nhwc,nc->nhw", maps, weights), 0), rtol=1e-5, atol=1e-7)


def test_grad_cam_of_a_smaller_layer_is_resized_to_the_image(tiny):
    model, variables, images = tiny
    cam = inspection.grad_cam(model, variables, images, layer="conv2")
    assert cam.shape == (5, 10, 10) and cam.dtype == jnp.float32 and (np.asarray(cam) >= 0).all()
    np.testing.assert_allclose(inspection.grad_cam(model, variables, images, layer="conv2", batch_size=2), cam,
                               rtol=1e-5, atol=1e-7)


def test_weight_histograms_and_their_change(tiny):
    _, variables, _ = tiny
    histograms = inspection.weight_histograms(variables, bins=10)
    assert set(histograms) == {"conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias", "fc/kernel", "fc/bias"}
    kernel = np.asarray(variables["params"]["conv1"]["kernel"])
    counts, edges = histograms["conv1/kernel"]
    assert counts.sum() == kernel.size and edges.shape == (11,)
    assert edges[0] == kernel.min() and edges[-1] == kernel.max()
    doubled = jax.tree.map(lambda a: 2 * a, variables)
    change = inspection.change_histograms(variables, doubled, bins=10)["conv1/kernel"]
    np.testing.assert_allclose(np.asarray(change.edges)[[0, -1]], [kernel.min(), kernel.max()], rtol=1e-6)
    relative = inspection.relative_change(variables, doubled)
    assert relative["conv1/kernel"] == pytest.approx(1.0) and relative["conv1/bias"] == 0.0  # zero biases


@pytest.mark.parametrize("call, message", [
    (lambda m, v, x: inspection.activations(m, v, x, "conv9"),
     "unknown layer 'conv9'; this model's named features are conv1, conv2, pooled"),
    (lambda m, v, x: inspection.features(m, v, x, "fc"), "unknown layer 'fc'"),
    (lambda m, v, x: inspection.filter_grid(v, "fc"), "unknown conv layer 'fc'; this model's conv layers are conv1, conv2"),
    (lambda m, v, x: inspection.filter_grid(v, "conv2"), "4 input channels are neither grey nor RGB"),
    (lambda m, v, x: inspection.grad_cam(m, v, x, layer="pooled"), "this model's conv layers are conv1, conv2"),
    (lambda m, v, x: inspection.filter_change(v, _init(CamNet(), (6, 6, 3)), "conv1"), "compare variables of the same"),
    (lambda m, v, x: inspection.change_histograms(v, _init(CamNet(), (6, 6, 3))), "different layers or shapes"),
    (lambda m, v, x: inspection.occlusion(m, v, x, patch=11, stride=1), "patch must be 1 to 10 pixels"),
    (lambda m, v, x: inspection.occlusion(m, v, x, patch=0, stride=1), "patch must be 1 to 10 pixels"),
    (lambda m, v, x: inspection.occlusion(m, v, x, patch=3, stride=0), "stride must be >= 1"),
    (lambda m, v, x: inspection.saliency(m, v, x, batch_size=0), "batch_size must be >= 1"),
    (lambda m, v, x: inspection.grad_cam(m, v, x, [0, 1], layer="conv1"), r"one label per image: \(2,\) labels for 5"),
    (lambda m, v, x: inspection.weight_histograms(v, bins=0), ">= 1 bin"),
])
def test_bad_requests_are_usage_errors_that_say_what_is_valid(tiny, call, message):
    model, variables, images = tiny
    with pytest.raises(UsageError, match=message):
        call(model, variables, images)


def test_checking_a_layer_of_a_model_too_large_for_the_images_names_the_empty_layer():
    """Before a study trains (its --layer checked) or loads a run: not a ZeroDivisionError."""
    images = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(UsageError, match="8x8 images are too small for CifarCNN: its layer 'Dropout_1'"):
        inspection.check_layers(get_model("cifar_cnn"), images, conv_layer="conv2")
    with pytest.raises(UsageError, match="8x8 images are too small for CifarCNN"):
        runs.check_model(get_model("cifar_cnn"), {}, images, "a run")
