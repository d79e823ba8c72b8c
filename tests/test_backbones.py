"""The pretrained architectures (VGG, ResNet, DenseNet) and the strided convs and pools they need.

Parameter counts come from ``jax.eval_shape`` (no weights computed); the references are
Keras' and torchvision's own counts.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcv.errors import UsageError
from jaxcv.models import count_params, get_model
from jaxcv.models.backbone import layer_matches
from jaxcv.models.layers import Conv, avg_pool, max_pool, use_conv_impl


def _shapes(model, size, batch=1):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((batch, size, size, 3))))


@pytest.mark.parametrize("impl", ["im2col", "xla"])
@pytest.mark.parametrize("kernel,strides,padding", [
    ((3, 3), 2, "SAME"), ((3, 3), 2, "VALID"), ((7, 7), 2, "VALID"), ((1, 1), 2, "VALID"), ((3, 2), (2, 3), "SAME")])
def test_strided_conv_matches_flax_in_value_and_gradient(impl, kernel, strides, padding):
    x = jax.random.normal(jax.random.key(1), (2, 12, 13, 3))
    ours = Conv(4, kernel, padding, strides=strides)
    theirs = nn.Conv(4, kernel, strides=strides, padding=padding)
    variables = ours.init(jax.random.key(0), x)

    def output_and_grads(module):
        """Jitted, each a new function: traced, so computed, with the block's formulation."""
        loss = lambda v, x: (module.apply(v, x) ** 2).sum()  # noqa: E731
        return (jax.jit(lambda v, x: module.apply(v, x))(variables, x),
                jax.jit(jax.grad(loss, argnums=(0, 1)))(variables, x))

    with use_conv_impl(impl):
        (out, grads), (expected, expected_grads) = output_and_grads(ours), output_and_grads(theirs)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), grads, expected_grads)


@pytest.mark.parametrize("size", [8, 9])
def test_pools_match_flax(size):
    x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
    torch_pool = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))  # PyTorch's, -inf padding
    np.testing.assert_array_equal(max_pool(x, 3, stride=2, padding=1), torch_pool)
    np.testing.assert_array_equal(max_pool(x, 3, stride=2), nn.max_pool(x, (3, 3), strides=(2, 2)))
    np.testing.assert_allclose(avg_pool(x), nn.avg_pool(x, (2, 2), strides=(2, 2)), rtol=1e-6)


@pytest.mark.parametrize("name,fields,size,params,stats", [
    ("vgg16", dict(include_top=False), 224, 14_714_688, 0),      # Keras VGG16(include_top=False)
    ("vgg16", {}, 224, 138_357_544, 0),                           # Keras VGG16()
    ("vgg19", dict(include_top=False), 224, 20_024_384, 0),
    ("resnet18", {}, 224, 11_689_512, 9_600),                     # torchvision parameters()
    ("resnet50", {}, 224, 25_557_032, 53_120),
    ("densenet121", dict(include_top=False), 224, 6_953_856, 83_648),  # Keras: 7,037,504 in all
    # report 002's block removal with its 8-way head; Keras' counts of the model cut at pool{k+1}_pool
    ("densenet121", dict(blocks=3, num_classes=8), 64, 4_797_832, 53_440),  # 4,851,272: "5 M"
    ("densenet121", dict(blocks=2, num_classes=8), 64, 1_431_688, 15_296),  # 1,446,984: "1.5 M"
    ("densenet121", dict(blocks=1, num_classes=8), 64, 378_888, 3_904),     # 382,792: "380.000"
    ("densenet121", dict(blocks=1, num_classes=8, top=(1024,)), 64, 518_152, 3_904),  # 522,056: "520.000"
])
def test_parameter_counts_equal_the_references(name, fields, size, params, stats):
    variables = _shapes(get_model(name, **fields), size)
    assert count_params(variables["params"]) == params
    assert count_params(variables.get("batch_stats", {})) == stats


def test_vgg_features_have_keras_and_paper_names():
    model = get_model("vgg16", include_top=False, pooling="max")
    aliased = []

    def run(x):
        variables = model.init(jax.random.key(0), x)
        out, feats = model.apply(variables, x)
        aliased.append(feats["conv4_2"] is feats["block4_conv2"] and feats["conv5_1"] is feats["block5_conv1"])
        return out, feats

    out, feats = jax.eval_shape(run, jnp.zeros((2, 64, 64, 3)))
    assert aliased == [True] and out.shape == (2, 512)
    assert feats["block1_conv2"].shape == (2, 64, 64, 64) and feats["block5_pool"].shape == (2, 2, 2, 512)
    assert {f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)} <= set(feats)
    assert feats["max_pool"].shape == (2, 512)


@pytest.mark.parametrize("name,fields,out_shape,first_dense", [
    ("vgg16", {}, (2, 1000), (2 * 2 * 512, 4096)),                     # Keras' top flattens the map
    ("vgg16", dict(pooling="avg", top=(256,), num_classes=13), (2, 13), (512, 256)),  # a new, small head
    ("resnet18", dict(num_classes=7), (2, 7), (512, 7)),
    ("resnet18", dict(include_top=False), (2, 2, 2, 512), None),
    ("densenet121", dict(include_top=False, pooling="avg"), (2, 1024), None),
    ("densenet121", dict(blocks=2, num_classes=8), (2, 8), (256, 8)),
])
def test_tops_and_pooling(name, fields, out_shape, first_dense):
    model = get_model(name, **fields)
    variables = _shapes(model, 64, batch=2)
    out, _ = jax.eval_shape(model.apply, variables, jnp.zeros((2, 64, 64, 3)))
    assert out.shape == out_shape
    heads = model.head_layers()
    assert bool(heads) == model.include_top and all(h in variables["params"] for h in heads)
    if first_dense is not None:
        assert variables["params"][heads[0]]["kernel"].shape == first_dense


def test_densenet_is_cut_after_the_transition_before_the_removed_block():
    model = get_model("densenet121", blocks=2, include_top=False)
    variables = _shapes(model, 64)
    _, feats = jax.eval_shape(model.apply, variables, jnp.zeros((1, 64, 64, 3)))
    assert "pool3_pool" in feats and "conv3_block12_concat" in feats
    assert not any(k.startswith(("conv4", "pool4", "bn")) for k in feats)
    assert set(variables["batch_stats"]) >= {"conv1_bn", "pool3_bn"} and "bn" not in variables["batch_stats"]


def test_resnet_layers_are_torchvision_modules():
    params = _shapes(get_model("resnet50"), 64)["params"]
    assert {"conv1", "bn1", "layer1_0_conv1", "layer1_0_bn1", "layer4_2_bn3", "fc"} <= set(params)
    assert params["layer2_0_downsample_0"]["kernel"].shape == (1, 1, 256, 512)  # torchvision's layer2.0.downsample.0
    assert params["layer2_0_conv2"]["kernel"].shape == (3, 3, 128, 128)  # v1.5: the 3x3 conv strides
    assert "bias" not in params["conv1"] and params["fc"]["kernel"].shape == (2048, 1000)


@pytest.mark.parametrize("name,fields,match", [
    ("vgg16", dict(depth=11), "VGG depth"), ("densenet121", dict(blocks=5), "blocks"),
    ("resnet18", dict(depth=34), "ResNet depth"), ("vgg16", dict(preprocess="imagenet"), "preprocess"),
    ("resnet18", dict(include_top=False, pooling="mean"), "pooling"),
])
def test_bad_fields_are_usage_errors(name, fields, match):
    with pytest.raises(UsageError, match=match):
        _shapes(get_model(name, **fields), 32)


def test_layer_matches_at_name_boundaries():
    assert layer_matches("block4_conv1", "block4") and layer_matches("conv4_block1_0_bn", "conv4_block1")
    assert not layer_matches("conv4_block10_0_bn", "conv4_block1") and not layer_matches("fc1", "fc")
    assert layer_matches("fc", "fc") and layer_matches("backbone/conv1", "backbone")
