"""Freezing: trainable sets, masked optimizers, frozen BatchNorm, and the two-stage recipe,
checked with real optimizer steps of ``jaxcv.train.train_step``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from skimage import data

from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.train import classification, create_state, make_optimizer, set_trainable, train_step, two_stage
from jaxcv.train.freeze import layer_order, mask_updates, select_layers
from photos import photos

LAYERS = ["conv1", "bn1", "layer1_0_conv1", "layer1_0_bn1", "layer4_1_conv2", "layer4_1_bn2", "fc"]


def test_trainable_sets():
    assert select_layers(LAYERS, "head", ["fc"]) == ["fc"]
    assert select_layers(LAYERS, "last:3", ["fc"]) == ["layer4_1_conv2", "layer4_1_bn2", "fc"]
    assert select_layers(LAYERS, "from:layer4", ["fc"]) == ["layer4_1_conv2", "layer4_1_bn2", "fc"]
    assert select_layers(LAYERS, "fc, layer1", ["fc"]) == ["layer1_0_conv1", "layer1_0_bn1", "fc"]
    assert select_layers(LAYERS, ["all"], ["fc"]) == LAYERS
    for bad, match in (("layer9", r"matches no layer \(layers: conv1, bn1, layer1_0_conv1, layer1_0_bn1, "
                                  r"layer4_1_conv2, layer4_1_bn2, fc\)"),
                       ("from:conv", "matches no layer"), ("last:0", "1 to 7"),
                       ("last:x", "1 to 7")):
        with pytest.raises(UsageError, match=match):
            select_layers(LAYERS, bad, ["fc"])
    with pytest.raises(UsageError, match="no top"):
        select_layers(LAYERS, "head", [])


def test_layers_are_in_forward_order():
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    resnet = layer_order(get_model("resnet18"), x)
    assert resnet[:3] == ["conv1", "bn1", "layer1_0_conv1"]
    assert select_layers(resnet, "last:5", ["fc"]) == [  # report 003's "last five layers"
        "layer4_1_conv1", "layer4_1_bn1", "layer4_1_conv2", "layer4_1_bn2", "fc"]
    vgg = layer_order(get_model("vgg16", pooling="avg"), x)
    assert select_layers(vgg, "from:block5", ["predictions"]) == [
        "block5_conv1", "block5_conv2", "block5_conv3", "fc1", "fc2", "predictions"]


def test_masked_updates_are_zero_even_with_momentum_and_weight_decay():
    params = {"a": {"kernel": jnp.ones(3)}, "b": {"kernel": jnp.ones(3)}, "c": {"d": {"bias": jnp.ones(2)}}}
    tx = mask_updates(make_optimizer("sgd", 0.1, momentum=0.9, weight_decay=0.1), ["a", "c/d"])
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    assert np.all(updates["b"]["kernel"] == 0)
    assert np.all(updates["a"]["kernel"] < 0) and np.all(updates["c"]["d"]["bias"] < 0)


def _state(model, x):
    """``create_state`` compiled: its eager init runs a network op by op (a minute for ResNet18 on a loaded CPU)."""
    return jax.jit(lambda x: create_state(model, optax.sgd(0.1), x, jax.random.key(0)))(x)


def _changed(before, after):
    """Per layer: does any of its tensors differ bit for bit."""
    return {layer: any(not np.array_equal(np.asarray(b).view(np.uint32), np.asarray(a).view(np.uint32))
                       for b, a in zip(jax.tree.leaves(before[layer]), jax.tree.leaves(after[layer])))
            for layer in before}


def test_fine_tuning_never_changes_frozen_layers_or_statistics():
    images = photos(32, data.astronaut(), data.chelsea(), data.coffee(), data.rocket())
    batch = {"image": jnp.asarray(images), "label": jnp.array([0, 1, 2, 0])}
    x = jnp.asarray(images[:1], jnp.float32) / 255
    model = get_model("resnet18", num_classes=3)
    state = _state(model, x)
    step = jax.jit(functools.partial(train_step, loss_fn=classification))

    def run(state, steps=3):
        for i in range(steps):
            state, _ = step(state, batch, jax.random.key(i))
        return state

    # report 003: only the last five layers, with momentum and weight decay that must not leak
    tuned = run(set_trainable(state, "last:5", make_optimizer("sgd", 0.05, momentum=0.9, weight_decay=1e-2), x))
    trainable = {"layer4_1_conv1", "layer4_1_bn1", "layer4_1_conv2", "layer4_1_bn2", "fc"}
    assert tuned.model.frozen and "layer4_1_bn1" not in tuned.model.frozen and "bn1" in tuned.model.frozen
    params, stats = _changed(state.params, tuned.params), _changed(state.batch_stats, tuned.batch_stats)
    assert {layer for layer, changed in params.items() if changed} == trainable
    assert {layer for layer, changed in stats.items() if changed} == {"layer4_1_bn1", "layer4_1_bn2"}

    # report 002: the head alone, then every layer at a lower learning rate
    head, full = two_stage(head_epochs=1, finetune_epochs=1)
    assert (head.trainable, full.trainable) == ("head", "all")
    headed = set_trainable(tuned, head.trainable, head.optimizer, x)  # the masks work as above
    assert len(headed.model.frozen) == len(state.batch_stats)  # every BatchNorm in inference mode
    updates, _ = headed.tx.update(jax.tree.map(jnp.ones_like, headed.params), headed.opt_state, headed.params)
    assert {layer for layer, u in updates.items() if any(np.any(v != 0) for v in jax.tree.leaves(u))} == {"fc"}
    finetuned = run(set_trainable(headed, full.trainable, full.optimizer, x), steps=1)
    assert finetuned.model.frozen == ()
    assert all(_changed(headed.params, finetuned.params).values())
    assert all(_changed(headed.batch_stats, finetuned.batch_stats).values())


def test_a_model_that_cannot_freeze_its_batchnorm_says_so():
    x = jnp.zeros((1, 32, 32, 3))
    state = _state(get_model("cifar_cnn_bn"), x)
    with pytest.raises(UsageError, match="CifarCNN cannot keep BatchNorm statistics frozen"):
        set_trainable(state, "head", optax.sgd(0.1), x)
    assert set_trainable(state, "all", optax.sgd(0.1), x).model == state.model
