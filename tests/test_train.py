import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.models.layers import use_conv_impl
from jaxcv.train import (OPTIMIZERS, EarlyStopping, NonFiniteLossError, ReduceLROnPlateau, classification,
                         create_state, evaluate, evaluate_arrays, fit, host_batches, make_optimizer, make_schedule,
                         pad_to_batches, predict, reconstruction, regression)
from jaxcv.train import evaluation
from jaxcv.train.evaluation import tight_batch
from jaxcv.train.tensorboard import scalar_tag
from tiny import TinyCNN


def _small(data, n):
    return {k: v[:n] for k, v in data.items()}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_takes_a_step(name):
    params = {"w": jnp.ones(3)}
    tx = make_optimizer(name, 0.1, momentum=0.9 if name in ("sgd", "rmsprop") else 0.0, weight_decay=1e-4)
    updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    assert float(updates["w"][0]) < 0


def test_optimizer_errors():
    with pytest.raises(UsageError, match="choose from"):
        make_optimizer("adamm", 0.1)
    with pytest.raises(UsageError, match="nesterov"):
        make_optimizer("sgd", 0.1, nesterov=True)
    with pytest.raises(UsageError, match="weight_decay"):
        make_optimizer("sgd", 0.1, weight_decay=-1)
    with pytest.raises(UsageError, match="weight_decay must be finite"):
        make_optimizer("sgd", 0.1, weight_decay=float("nan"))


def test_schedules():
    assert make_schedule("constant", 0.1, 10) == 0.1
    cosine = make_schedule("cosine", 0.1, 10)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(10)) == pytest.approx(0.0)
    assert float(make_schedule("exponential", 0.1, 10)(10)) == pytest.approx(0.01)
    with pytest.raises(UsageError):
        make_schedule("linear", 0.1, 10)


def test_losses():
    logits = jnp.array([[5.0, 0.0], [0.0, 5.0]])
    out = classification(logits, {"label": jnp.array([0, 0])})
    np.testing.assert_allclose(out["accuracy"], [1.0, 0.0])
    assert out["loss"][0] < out["loss"][1]
    mse = regression(jnp.zeros((2, 3)), {"target": jnp.array([[1.0, 1, 1], [2, 2, 2]])})
    np.testing.assert_allclose(mse["loss"], [1.0, 4.0])
    bce = reconstruction(jnp.full((1, 4), 10.0), {"target": jnp.ones((1, 4))})
    assert float(bce["loss"][0]) < 1e-3


def test_evaluate_is_exact_with_padding(shapes_cifar):
    _, test = shapes_cifar
    data = _small(test, 100)
    model = get_model("cifar_cnn")
    state = create_state(model, optax.sgd(0.1), jnp.zeros((1, 32, 32, 3)), jax.random.key(0))
    padded = jax.device_put(pad_to_batches(data, 64))  # 100 = 64 + 36 real examples
    with use_conv_impl("xla"):  # whichever: the same for both
        metrics = evaluate(state, padded, classification, 64)
        logits, _ = model.apply({"params": state.params}, data["image"].astype(np.float32) / 255)
        scores = evaluate_arrays(state, data, batch_size=48)  # 3 batches of 34: pads 2, puts on the mesh, jits
    direct = classification(logits, data)
    assert float(metrics["loss"]) == pytest.approx(float(direct["loss"].mean()), rel=1e-5)
    assert float(metrics["accuracy"]) == pytest.approx(float(direct["accuracy"].mean()))
    assert scores["loss"] == pytest.approx(float(direct["loss"].mean()), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(float(direct["accuracy"].mean()))


def test_evaluation_batches_pad_as_little_as_their_count_allows():
    assert [tight_batch(n, 256) for n in (1, 200, 256, 257, 288, 512)] == [1, 200, 256, 129, 144, 256]
    assert tight_batch(10_000, 256, multiple=4) == 252  # 40 batches either way: 80 padded, not 240
    assert tight_batch(3, 256, multiple=4) == 4


def test_predict_runs_groups_of_batches_and_counts_every_image_once():
    """Batches of 4, 3 per compiled call: for 1 image (one group, one batch, padded), 12 (one full
    group) and 17 (two groups, the second with two batches, its third never computed) each image's
    own output, from one program."""
    images = np.random.default_rng(0).integers(0, 256, (17, 8, 8, 3), np.uint8)
    state = create_state(TinyCNN(), optax.sgd(0.1), jnp.zeros((1, 8, 8, 3)), jax.random.key(0))
    alone = np.concatenate([state.apply(state.variables(), image[None] / 255.0, train=False)[0] for image in images])
    compiled = None
    for n in (1, 12, 17):
        np.testing.assert_allclose(predict(state, images[:n], batch_size=4, batches_per_call=3), alone[:n],
                                   rtol=1e-5, atol=1e-6)
        compiled = compiled or evaluation._infer._cache_size()
    assert evaluation._infer._cache_size() == compiled  # the first call's program served the others
    with pytest.raises(UsageError, match="batches_per_call must be >= 1"):
        predict(state, images, batches_per_call=0)
    with pytest.raises(UsageError, match="no images"):
        predict(state, images[:0])
    groups = list(evaluation.batch_groups(images, 4, 3))
    assert [(g.shape, count) for g, count in groups] == [((3, 4, 8, 8, 3), 3), ((3, 4, 8, 8, 3), 2)]
    np.testing.assert_array_equal(groups[1][0].reshape(-1, 8, 8, 3)[:5], images[12:])
    assert not groups[1][0].reshape(-1, 8, 8, 3)[5:].any()  # padding: zeros


def test_resume_matches_an_uninterrupted_run(shapes_cifar, tmp_path):
    train, test = _small(shapes_cifar[0], 512), _small(shapes_cifar[1], 128)
    kw = dict(optimizer=make_optimizer("adam", 1e-3), batch_size=64, seed=3, progress=False)
    make = lambda: TinyCNN(batchnorm=True)  # noqa: E731  dropout and BN state too
    whole = fit(make(), train, test, epochs=3, **kw).history
    fit(make(), train, test, epochs=1, checkpoint_dir=tmp_path, **kw)  # "interrupted" after epoch 1
    resumed = fit(make(), train, test, epochs=3, checkpoint_dir=tmp_path, **kw).history
    assert len(resumed) == 3
    for a, b in zip(whole, resumed):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_nan_loss_of_a_lone_model_is_a_clear_error(shapes_cifar, tmp_path):
    train = _small(shapes_cifar[0], 128)
    nan_loss = lambda out, batch: {"loss": classification(out, batch)["loss"] * jnp.nan}  # noqa: E731
    kw = dict(optimizer=optax.sgd(0.1), epochs=2, batch_size=64, loss_fn=nan_loss, progress=False,
              checkpoint_dir=tmp_path)
    with pytest.raises(NonFiniteLossError, match="became nan in epoch 1; lower the learning rate"):
        fit(TinyCNN(), train, None, **kw)
    with pytest.raises(UsageError, match="epoch 1"):  # a rerun says so again, without training
        fit(TinyCNN(), train, None, **kw)


def test_host_batches_shuffle_whole_batches_each_epoch():
    data = {"image": np.arange(10, dtype=np.uint8)[:, None], "label": np.arange(10, dtype=np.int32)}
    stream = host_batches(data, batch_size=4, seed=1)
    epoch0, again, epoch1 = list(stream(0)), list(stream(0)), list(stream(1))
    assert [b["label"].shape for b in epoch0] == [(4,), (4,)]  # the last partial batch is dropped
    assert all((b["image"][:, 0] == b["label"]).all() for b in epoch0)  # features stay together
    assert len(set(np.concatenate([b["label"] for b in epoch0]))) == 8
    np.testing.assert_array_equal(epoch0[0]["label"], again[0]["label"])
    assert not np.array_equal(np.concatenate([b["label"] for b in epoch0]), np.concatenate([b["label"] for b in epoch1]))
    with pytest.raises(UsageError, match="no batch"):
        host_batches(data, batch_size=16)


def test_bad_arguments():
    data = {"image": np.zeros((8, 32, 32, 3), np.uint8), "label": np.zeros(8, np.int32)}
    with pytest.raises(UsageError, match="epochs"):
        fit(get_model("cifar_cnn"), data, None, optimizer=optax.sgd(0.1), epochs=0, batch_size=4)
    with pytest.raises(TypeError, match="epoch"):  # a misspelt option
        fit(get_model("cifar_cnn"), data, None, optimizer=optax.sgd(0.1), epoch=1, batch_size=4)
    with pytest.raises(UsageError, match="no batch"):
        fit(get_model("cifar_cnn"), data, None, optimizer=optax.sgd(0.1), epochs=1, batch_size=16,
            progress=False)


class _State:  # what the callbacks read and write of a TrainState
    def __init__(self, lr_scale):
        self.lr_scale = jnp.float32(lr_scale)

    def replace(self, lr_scale):
        return _State(lr_scale)


def _history(values, scales=None):
    scales = scales or [1.0] * len(values)
    return [{"val_loss": v, "lr_scale": s} for v, s in zip(values, scales)]


def test_early_stopping():
    stop = EarlyStopping(patience=2)
    assert not stop(_history([3, 2, 1]), _State(1))[1]
    assert not stop(_history([3, 1, 2]), _State(1))[1]
    assert stop(_history([3, 1, 2, 2]), _State(1))[1]
    assert EarlyStopping("val_accuracy", patience=1)([{"val_accuracy": a} for a in (0.5, 0.4)], None)[1]


def test_reduce_lr_on_plateau():
    cb = ReduceLROnPlateau(factor=0.5, patience=2)
    assert float(cb(_history([3, 2, 2]), _State(1))[0].lr_scale) == 1.0
    state, stop = cb(_history([3, 2, 2, 2]), _State(1))
    assert float(state.lr_scale) == 0.5 and not stop
    # just reduced: waits another `patience` epochs at the new rate before reducing again
    assert float(cb(_history([3, 2, 2, 2, 2], [1, 1, 1, 1, 0.5]), _State(0.5))[0].lr_scale) == 0.5
    assert float(cb(_history([3, 2, 2, 2, 2, 2], [1, 1, 1, 1, 0.5, 0.5]), _State(0.5))[0].lr_scale) == 0.25


def test_reduce_lr_changes_training_without_recompiling(shapes_cifar):
    train, test = _small(shapes_cifar[0], 256), _small(shapes_cifar[1], 64)
    always = ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=0, min_delta=1e9)
    h = fit(TinyCNN(), train, test, optimizer=make_optimizer("adam", 1e-3), epochs=3,
            batch_size=64, callbacks=[always], progress=False).history
    assert [r["lr_scale"] for r in h] == pytest.approx([1.0, 0.1, 0.01])
    assert [r["learning_rate"] for r in h] == pytest.approx([1e-3, 1e-4, 1e-5])  # as TensorBoard shows it


def test_tensorboard_tags_pair_train_and_validation():
    assert scalar_tag("train_loss") == "loss/train" and scalar_tag("val_loss") == "loss/val"
    assert scalar_tag("val_matched_mse") == "matched_mse/val" and scalar_tag("epoch_seconds") == "seconds/epoch"
    assert scalar_tag("learning_rate") == "optimizer/learning_rate"
    assert scalar_tag("epoch") is None and scalar_tag("models") is None


@pytest.mark.parametrize("name,size,layer", [("cifar_cnn", 8, "'Dropout_1' would get an input of shape (1, 0, 0, 64)"),
                                             ("lenet", 4, "'fc1' would get an input of shape (1, 0)")])
def test_images_too_small_for_a_model_are_a_usage_error_naming_the_layer(name, size, layer):
    """Not a ZeroDivisionError from deep inside an initializer (fan-in 0)."""
    images = {"image": np.zeros((8, size, size, 3), np.uint8), "label": np.zeros(8, np.int32)}
    message = rf"^{size}x{size} images are too small for .*: its layer {re.escape(layer)}; "
    with pytest.raises(UsageError, match=message):
        fit(get_model(name), images, None, optimizer=optax.sgd(0.1), epochs=1, batch_size=8, progress=False)
