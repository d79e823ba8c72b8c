"""``fit_many``: K models vmapped in one compiled function equal the same K ``fit`` runs.

A model trained alone (``fit``, K = 1) runs unmapped (``members.vmap``), computed by XLA with
other matrix kernels than the same model in a group, so the two agree to float rounding,
which training amplifies step by step: the comparisons run a few steps, where any difference
in the mechanics (data order, initialisation, dropout masks, hyper-parameters) would show as a
large one."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcv.errors import UsageError
from jaxcv.train import fit, fit_many, make_optimizer, members
from tiny import TinyCNN

KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def test_members_vmap_runs_one_model_unmapped():
    """``members.vmap`` equals ``jax.vmap`` for one model and for three; one model's function
    is called on the arrays themselves (no batching tracer), three models' on a vmapped axis."""
    mapped = []

    def fn(state, shared):
        mapped.append(isinstance(state["w"], jax.core.Tracer))
        return {"out": state["w"] * shared + state["b"]}, state["b"].sum()

    shared = jnp.arange(4.0)
    for k in (1, 3):
        state = {"w": jnp.arange(4.0 * k).reshape(k, 4), "b": jnp.ones((k, 4))}
        got = members.vmap(fn, in_axes=(0, None))(state, shared)
        want = jax.vmap(fn, in_axes=(0, None))(state, shared)
        jax.tree.map(np.testing.assert_array_equal, got, want)
    assert mapped == [False, True, True, True]  # members.vmap of one, jax.vmap of one; both of three


def _small(data, n):
    return {k: v[:n] for k, v in data.items()}


@pytest.fixture(scope="module")
def data(shapes_cifar):
    return _small(shapes_cifar[0], 384), _small(shapes_cifar[1], 128)


def _assert_kernel_close(a, b, rel=1e-3):
    """Two ``conv1`` kernels equal to ``rel`` of the kernel's scale (float rounding shows most
    on the entries near zero)."""
    a, b = np.asarray(a.params["conv1"]["kernel"]), np.asarray(b.params["conv1"]["kernel"])
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * float(np.abs(b).max()))


def _assert_same(a, b, rel=2e-4):
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for ra, rb in zip(a, b):
        for key in KEYS:
            assert ra[key] == pytest.approx(rb[key], rel=rel, abs=1e-5), (key, ra, rb)


def test_seeds_and_hyperparameters_match_sequential_runs(data):
    """BatchNorm, dropout (traced rates), per-model data order, learning rates, momentum: all as
    in ``fit``, over three steps (SGD: Adam's normalised steps would amplify the rounding)."""
    train, test = _small(data[0], 192), data[1]
    lrs, rates, seeds = [0.01, 0.03, 0.01], [0.25, 0.1, 0.0], [0, 1, 2]
    kw = dict(epochs=1, batch_size=64, progress=False)
    many = fit_many(TinyCNN(batchnorm=True), train, test, seeds=seeds,
                    hparams={"learning_rate": lrs, "dropout_rate": rates},
                    optimizer=make_optimizer("sgd", 0.01, momentum=0.9), **kw)
    assert len(many) == 3
    for result, seed, lr, rate in zip(many, seeds, lrs, rates):
        alone = fit(TinyCNN(dropout_rate=rate, batchnorm=True), train, test, seed=seed,
                    optimizer=make_optimizer("sgd", lr, momentum=0.9), **kw)
        _assert_same(result.history, alone.history)
        _assert_kernel_close(result.state, alone.state)
    assert many[0].history != many[1].history


def test_a_stopped_or_diverged_model_keeps_its_state_while_others_go_on(data):
    train = _small(data[0], 128)  # two steps an epoch
    stop_fast_lr = lambda history, state: (  # noqa: E731  stops the lr-0.05 model after epoch 1
        state, float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.05))
    kw = dict(seeds=[0, 0, 0], optimizer=make_optimizer("sgd", 0.01), epochs=3, batch_size=64, progress=False)
    many = fit_many(TinyCNN(), train, None, hparams={"learning_rate": [0.01, 0.05, 1e30]},
                    callbacks=[stop_fast_lr], **kw)
    assert len(many[0].history) == 3 and len(many[1].history) == 1
    assert not math.isfinite(many[2].history[-1]["train_loss"]) and len(many[2].history) == 1
    one_epoch = fit(TinyCNN(), train, None, optimizer=make_optimizer("sgd", 0.05), epochs=1,
                    batch_size=64, progress=False)
    _assert_kernel_close(many[1].state, one_epoch.state, rel=1e-4)  # not trained on after it stopped


def test_resume_matches_an_uninterrupted_run(data, tmp_path):
    train, test = data
    kw = dict(seeds=[3, 4], hparams={"dropout_rate": [0.2, 0.4]}, optimizer=make_optimizer("adam", 1e-3),
              batch_size=64, progress=False)
    whole = fit_many(TinyCNN(), train, test, epochs=2, **kw)
    fit_many(TinyCNN(), train, test, epochs=1, checkpoint_dir=tmp_path, **kw)
    resumed = fit_many(TinyCNN(), train, test, epochs=2, checkpoint_dir=tmp_path, **kw)
    for a, b in zip(whole, resumed):
        _assert_same(a.history, b.history, rel=1e-5)


def test_bad_hyperparameters_are_clear_errors(data):
    train, _ = data
    kw = dict(optimizer=make_optimizer("adam", 1e-3), epochs=1, batch_size=64, progress=False)
    with pytest.raises(UsageError, match="choose from .*learning_rate"):
        fit_many(TinyCNN(), train, None, seeds=[0], hparams={"lr": [0.1]}, **kw)
    with pytest.raises(UsageError, match="2 values for 3 seeds"):
        fit_many(TinyCNN(), train, None, seeds=[0, 1, 2], hparams={"dropout_rate": [0.1, 0.2]}, **kw)
    with pytest.raises(UsageError, match="at least one seed"):
        fit_many(TinyCNN(), train, None, seeds=[], **kw)
    scheduled = make_optimizer("adam", optax.cosine_decay_schedule(1e-3, 10))
    with pytest.raises(UsageError, match="learning_rate"):
        fit_many(TinyCNN(), train, None, seeds=[0], hparams={"learning_rate": [0.1]},
                 **{**kw, "optimizer": scheduled})
