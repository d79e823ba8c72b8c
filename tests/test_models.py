import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcv.models import count_params, get_model, list_models, param_table
from jaxcv.errors import UsageError
from jaxcv.models.layers import Conv, Dropout, batch_norm, conv_impl, max_pool, upsample, use_conv_impl
from jaxcv.viz import param_table_markdown


def _init(name, shape, **kw):
    model = get_model(name, **kw)
    return model, model.init(jax.random.key(0), jnp.zeros((2, *shape)))


def _shapes(name, shape, **kw):
    """The variables' shapes and dtypes, without computing them (all a parameter count needs)."""
    model = get_model(name, **kw)
    return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, *shape)))


@pytest.mark.parametrize("name,shape,count", [
    ("mnist_cnn", (28, 28, 1), 263_418),        # report 000's table
    ("keras_mnist_cnn", (28, 28, 1), 600_810),  # report 001
    ("cifar_cnn", (32, 32, 3), 1_250_858),      # Keras cifar10_cnn
    ("lenet", (32, 32, 3), 390_410),            # report 003 says 390,400: it drops fc2's 10 biases
    ("lenet_model2", (32, 32, 3), 390_986),     # LeNet + BatchNorm
    # report 004, 72x72 grey
    ("shapes_linear", (72, 72, 1), 72 * 72 * 3 + 3),  # the report's 15,555
    ("shapes_shallow_cnn", (72, 72, 1), (5 * 5 * 16 + 16) + 34 * 34 * 16 * 3 + 3),  # 68x68 conv, pooled
    ("shapes_deep_cnn", (72, 72, 1),
     (5 * 5 * 16 + 16) + (5 * 5 * 16 * 16 + 16) + 2 * 16 + (16 * 16 + 16) + (16 * 3 + 3)),
    ("vertex_regressor", (72, 72, 1),  # bias-free convs + BatchNorm, 72 -> 4 after four pools
     9 * 16 + 32 + 9 * 16 * 32 + 64 + 9 * 32 * 64 + 128 + 9 * 64 * 64 + 128 + (4 * 4 * 64 * 128 + 128) + (128 * 6 + 6)),
    ("hourglass", (72, 72, 1), (9 * 32 + 32) + 5 * (9 * 32 * 32 + 32) + 2 * 32 + (9 * 32 + 1)),
])
def test_parameter_counts(name, shape, count):
    variables = _shapes(name, shape)
    assert sum(r.params for r in param_table(variables["params"])) == count
    assert count_params(variables["params"]) == count


@pytest.mark.parametrize("fields,count", [  # report 001's architecture study, exactly its counts
    (dict(conv_features=(32,)), 693_962),
    (dict(conv_features=(32,) * 5), 370_506),
    (dict(conv_features=(32, 32), dense_features=(1024, 128)), 4_861_674),  # "4.9M"
])
def test_report_001_architecture_counts(fields, count):
    variables = _shapes("mnist_cnn", (28, 28, 1), **fields)
    assert count_params(variables["params"]) == count


def _train_mode_outputs(model, variables, x):
    """Shapes of ``(outputs, features)`` of ``model`` in training mode (nothing computed)."""
    return jax.eval_shape(lambda v: model.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)},
                                                mutable=["batch_stats"])[0], variables)


def test_lenet_models_train_mode():
    variables = _shapes("lenet_model1", (32, 32, 3))
    assert {"bn1", "bn2", "bn3", "bn_fc2"} <= set(variables["batch_stats"])
    logits, feats = _train_mode_outputs(get_model("lenet_model1"), variables, jnp.ones((2, 32, 32, 3)))
    assert logits.shape == (2, 10) and feats["conv5"].shape == (2, 8, 8, 512)


def test_report_000_parameter_table():
    variables = _shapes("mnist_cnn", (28, 28, 1))
    rows = param_table(variables["params"])
    assert [(r.layer, r.params) for r in rows] == [
        ("conv1", 320), ("conv2", 9248), ("conv3", 4624), ("fc1", 247_936), ("fc2", 1290)]
    assert rows[0].bytes == 320 * 4
    table = param_table_markdown(rows)
    assert "| **total** | 263,418 | 1.0 MB |" in table
    assert "| conv2 | 9,248 | 36.1 kB |" in table


def test_batchnorm_switch_adds_batch_stats():
    plain = _shapes("cifar_cnn", (32, 32, 3))
    bn = _shapes("cifar_cnn", (32, 32, 3), batchnorm=True)
    assert "batch_stats" not in plain and set(bn["batch_stats"]) == {
        "conv1_bn", "conv2_bn", "conv3_bn", "conv4_bn", "fc1_bn"}


def test_batchnorm_variance_survives_a_large_mean():
    """A channel at 3,000 ± 1 normalises to unit variance, as in Keras and PyTorch: flax's default
    ``E[x²] - E[x]²`` cancels in float32 there."""
    x = 3000 + jnp.asarray(np.random.default_rng(0).standard_normal((256, 1)), jnp.float32)
    y, _ = batch_norm(True, "bn").init_with_output(jax.random.key(0), x)
    assert float(jnp.var(y)) == pytest.approx(1.0, abs=0.01)


def test_models_name_their_features():
    model, variables = _init("cifar_cnn", (32, 32, 3), num_classes=7)
    logits, feats = model.apply(variables, jnp.ones((2, 32, 32, 3)))
    assert logits.shape == (2, 7)
    assert feats["conv1"].shape == (2, 32, 32, 32) and feats["conv2"].shape == (2, 30, 30, 32)
    assert feats["pool2"].shape == (2, 6, 6, 64) and feats["fc1"].shape == (2, 512)


def test_unknown_model_lists_choices():
    with pytest.raises(UsageError, match="mnist_cnn"):
        get_model("resnet9000")
    assert "cifar_cnn" in list_models()


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("kernel, strides", [((3, 3), 1), ((5, 5), 1), ((2, 3), 1), ((3, 3), 2), ((7, 7), 2), ((3, 3), (1, 2))])
def test_every_conv_formulation_matches_xla_conv(padding, kernel, strides):
    x = jax.random.normal(jax.random.key(1), (6, 9, 11, 3))  # 6 images: xla_chunked's gradient in 2 chunks
    conv = Conv(4, kernel, padding, strides)
    variables = conv.init(jax.random.key(0), x)
    weights = jax.random.normal(jax.random.key(2), conv.apply(variables, x).shape)  # a gradient unlike the output
    out, grads = {}, {}
    for impl in ("im2col", "xla", "xla_chunked"):
        with use_conv_impl(impl):  # read as the functions are traced
            out[impl] = jax.jit(lambda v, x: conv.apply(v, x))(variables, x)
            loss = lambda v, x: (conv.apply(v, x) * weights).sum()  # noqa: E731
            grads[impl] = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables, x)
    for impl in ("im2col", "xla_chunked"):
        np.testing.assert_allclose(out[impl], out["xla"], rtol=1e-5, atol=1e-5)
        jax.tree.map(lambda u, w: np.testing.assert_allclose(u, w, rtol=1e-4, atol=1e-4), grads[impl], grads["xla"])


@pytest.mark.parametrize("models_at_once", [True, False])
def test_xla_chunked_vmapped_computes_each_model_alone(models_at_once):
    """vmapped over models (``fit_many``): one convolution per kernel, not XLA's grouped one;
    over images only (synthesis' batches): the images joined.  Either way what each alone gives."""
    conv = Conv(4, (3, 3), "SAME", 2)
    x = jax.random.normal(jax.random.key(1), (3, 4, 9, 11, 2))  # 3 members of 4 images
    variables = jax.vmap(lambda k: conv.init(k, x[0]))(jax.random.split(jax.random.key(0), 3))
    if not models_at_once:
        variables = jax.tree.map(lambda v: v[0], variables)  # one model's, shared
    weights = jax.random.normal(jax.random.key(2), (3, 4, 5, 6, 4))
    loss = lambda v, x, w: (conv.apply(v, x) * w).sum()  # noqa: E731
    v_axis = 0 if models_at_once else None
    with use_conv_impl("xla_chunked"):
        grad = jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(v_axis, 0, 0))
        jaxpr = str(jax.make_jaxpr(grad)(variables, x, weights))
        grads = jax.jit(grad)(variables, x, weights)
    assert "feature_group_count=3" not in jaxpr
    with use_conv_impl("xla"):
        alone_grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        for i in range(3):
            alone = variables if not models_at_once else jax.tree.map(lambda v: v[i], variables)
            expected = alone_grad(alone, x[i], weights[i])
            jax.tree.map(lambda u, w: np.testing.assert_allclose(u[i], w, rtol=1e-4, atol=1e-4), grads, expected)


def test_one_switch_picks_every_convs_formulation():
    x = jnp.ones((2, 28, 28, 1))
    model = get_model("mnist_cnn")
    variables = model.init(jax.random.key(0), x)
    backend = conv_impl()
    for impl, primitive in (("im2col", "dot_general"), ("xla", "conv_general_dilated"),
                            ("xla_chunked", "conv_general_dilated")):
        with use_conv_impl(impl):
            assert conv_impl() == impl
            jaxpr = str(jax.make_jaxpr(lambda v: model.apply(v, x))(variables))
            assert (primitive in jaxpr) and ("conv_general_dilated" in jaxpr) == (impl != "im2col"), impl
        assert conv_impl() == backend  # restored on leaving the block
    with pytest.raises(ValueError, match="conv impl"):
        with use_conv_impl("winograd"):
            pass


def test_conv_rejects_unknown_padding():
    with pytest.raises(ValueError, match="padding"):
        Conv(4, padding="FULL").init(jax.random.key(0), jnp.ones((1, 5, 5, 1)))


def test_max_pool_floors_odd_sizes_like_keras():
    x = jnp.arange(2 * 5 * 5 * 1, dtype=jnp.float32).reshape(2, 5, 5, 1)
    y = max_pool(x)
    assert y.shape == (2, 2, 2, 1)
    assert float(y[0, 0, 0, 0]) == float(x[0, 1, 1, 0]) and float(y[0, 1, 1, 0]) == float(x[0, 3, 3, 0])


def test_dropout_matches_flax_and_vmaps_over_rates():
    x = jnp.ones((4, 64))
    rngs = {"dropout": jax.random.key(3)}
    ours = Dropout(0.3).apply({}, x, rngs=rngs)
    theirs = nn.Dropout(0.3, deterministic=False).apply({}, x, rngs=rngs)
    np.testing.assert_array_equal(ours, theirs)

    rates = jnp.array([0.0, 0.5, 1.0])
    out = jax.vmap(lambda r: Dropout(r).apply({}, x, rngs=rngs))(rates)
    np.testing.assert_array_equal(out[0], x)
    assert set(np.unique(out[1])) == {0.0, 2.0}
    np.testing.assert_array_equal(out[2], jnp.zeros_like(x))
    np.testing.assert_array_equal(Dropout(0.5, deterministic=True).apply({}, x), x)


def test_dropout_broadcast_dims_drops_whole_channels():
    x = jnp.ones((4, 6, 6, 32))
    y = Dropout(0.5, broadcast_dims=(1, 2)).apply({}, x, rngs={"dropout": jax.random.key(0)})
    per_channel = y.reshape(4, 36, 32)
    assert bool(jnp.all(per_channel == per_channel[:, :1]))  # a channel is kept or dropped whole
    assert set(np.unique(np.asarray(y)).tolist()) == {0.0, 2.0}


def test_upsample_is_nearest_neighbour():
    x = jnp.arange(2 * 2 * 3 * 2, dtype=jnp.float32).reshape(2, 2, 3, 2)
    y = upsample(x)
    assert y.shape == (2, 4, 6, 2)
    np.testing.assert_array_equal(y, jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2))
    np.testing.assert_array_equal(jax.grad(lambda x: upsample(x, 3).sum())(x), jnp.full(x.shape, 9.0))


def test_shapes_models_outputs():
    x = jnp.ones((2, 72, 72, 1))
    for name, shape in (("shapes_deep_cnn", (2, 3)), ("vertex_regressor", (2, 6)), ("hourglass", (2, 72, 72, 1))):
        out, feats = _train_mode_outputs(get_model(name), _shapes(name, (72, 72, 1)), x)
        assert out.shape == shape, name
    assert feats["code"].shape == (2, 9, 9, 32)  # the hourglass's bottleneck
    variables = _shapes("shapes_linear", (72, 72, 1))
    assert variables["params"]["fc1"]["kernel"].shape == (72 * 72, 3)  # one 72x72 template per class
