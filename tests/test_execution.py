"""Executions (convolution formulation x epoch driver) train the same models; the autotune
measures, caches and yields to overrides; bf16 compute keeps float32 parameters and learns."""

import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcv.bench import synthetic
from jaxcv.errors import UsageError
from jaxcv.models import get_model, layers
from jaxcv.models.cnn import MnistCNN
from jaxcv.models.layers import XLA_CPU_CONV_FAST, use_conv_impl
from jaxcv.train import autotune, fit, host_batches, make_optimizer
from jaxcv.train.epochs import DeviceEpochs, training_epochs
from jaxcv.train.losses import classification
from jaxcv.train.parallel import data_mesh

TINY = MnistCNN(conv_features=(4,), dense_features=(8,))
DATA = synthetic((10, 10, 1), 5 * 16)  # 5 steps of 16


def _fit(execution, data=DATA, **kw):
    return fit(TINY, data, None, optimizer=optax.adam(1e-2), epochs=2, batch_size=16, seed=1, progress=False,
               execution=execution, **kw)


def _max_difference(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)))


@pytest.fixture(scope="module")
def reference():
    return _fit("im2col/scan")


# unroll2 does not divide the 5 steps (2 + 2 + 1), unroll5 is the epoch in one call.
@pytest.mark.parametrize("execution", ["im2col/unroll2", "xla/scan", "xla/unroll5", "xla_chunked/scan"])
def test_every_execution_trains_the_same_model(reference, execution):
    result = _fit(execution)
    assert result.execution == {"execution": execution, "source": "pinned"}
    assert _max_difference(result.state.params, reference.state.params) < 1e-5  # float rounding only
    for mine, theirs in zip(result.history, reference.history):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert mine["train_accuracy"] == pytest.approx(theirs["train_accuracy"])


def test_streamed_batches_train_the_same_model_however_many_a_call_takes():
    """Up to K host batches per compiled call (the last call of each epoch takes the
    remainder: 5 = 2 + 2 + 1 here) train exactly the model one batch per call does."""
    stream = host_batches(DATA, 16, seed=2)
    one = _fit("im2col/stream", data=stream)
    for driver in ("stream2", "stream8"):
        result = _fit(f"im2col/{driver}", data=stream)
        assert result.execution == {"execution": f"im2col/{driver}", "source": "pinned"}
        assert _max_difference(result.state.params, one.state.params) < 1e-6
        assert [r["train_loss"] for r in result.history] == pytest.approx([r["train_loss"] for r in one.history])
    assert _fit(None, data=stream).execution["execution"].endswith("/stream8")  # the default


@pytest.mark.parametrize("driver", ["stream", "stream8"])
def test_a_stream_must_give_the_batch_size_fit_was_given(driver):
    """The size that ``fit`` reports is the size that trains: a stream of other batches is
    refused before training; a batch of another size in an epoch is named, whoever stacks it."""
    with pytest.raises(UsageError, match="batches hold 16 examples, but the batch size is 32"):
        fit(TINY, host_batches(DATA, 16), None, optimizer=optax.adam(1e-2), epochs=1, batch_size=32, progress=False)
    full, partial = {k: v[:16] for k, v in DATA.items()}, {k: v[:8] for k, v in DATA.items()}
    with pytest.raises(UsageError, match=r"batch 2 of epoch 1 .* is {'image': 'uint8\[8, 10, 10, 1\]', 'label': "
                                         r"'int32\[8\]'}, unlike its first batch, {'image': 'uint8\[16, 10, 10, 1\]'"):
        _fit(f"im2col/{driver}", data=lambda epoch: [full, full] + [partial] * epoch)
    floats = {"image": full["image"].astype(np.float32), "label": full["label"]}
    with pytest.raises(UsageError, match=r"batch 1 of epoch 0 .* is {'image': 'float32\[16, 10, 10, 1\]'"):
        _fit(f"im2col/{driver}", data=lambda epoch: [full, floats])
    wider = {"image": full["image"], "label": full["label"].astype(np.int64)}  # int32 on the device all the same
    assert len(_fit(f"im2col/{driver}", data=lambda epoch: [full, wider]).history) == 2


def test_autotune_measures_once_then_reads_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "autotune.json"))
    monkeypatch.setattr(autotune, "TIMED_STEPS", 4)
    monkeypatch.setattr(DeviceEpochs, "tunable_drivers", ("scan", "unroll2"))
    monkeypatch.setattr(autotune, "CONV_IMPLS", ("im2col", "xla"))  # xla_chunked: two more compiles
    first = _fit("auto")
    assert first.execution["source"] == "measured"
    assert set(first.execution["seconds_per_step"]) == {"im2col/scan", "im2col/unroll2", "xla/scan", "xla/unroll2"}
    per_step = first.execution["seconds_per_step"]
    fastest = min(per_step, key=per_step.get)
    default = "xla_chunked/scan" if XLA_CPU_CONV_FAST else "im2col/scan"  # on the CPU
    tie = per_step.get(default, math.inf) <= (1 + autotune.TIE) * per_step[fastest]  # then it keeps the default
    picked = first.execution["execution"]
    assert picked == (default if tie else fastest)
    entry, = json.loads((tmp_path / "autotune.json").read_text()).values()
    assert entry["execution"] == picked and entry["signature"]["batch_size"] == 16
    monkeypatch.setenv(autotune.ENV, "auto")
    again = _fit(None)  # no setting of its own: $JAXCV_EXECUTION's
    assert again.execution["source"] == "cached" and again.execution["execution"] == picked
    monkeypatch.setenv(autotune.ENV, "xla/unroll2")
    assert _fit(None).execution == {"execution": "xla/unroll2", "source": "pinned"}
    monkeypatch.delenv(autotune.ENV)
    assert _fit(None).execution == {"execution": default, "source": "pinned"}
    (tmp_path / "autotune.json").write_text("{")
    with pytest.raises(UsageError, match="damaged"):
        _fit("auto")


def test_the_autotune_keeps_the_default_unless_another_is_clearly_faster():
    scan, unroll8 = autotune.Execution("xla_chunked", "scan"), autotune.Execution("xla_chunked", "unroll8")

    def pick(scan_seconds, unroll8_seconds, candidates=(scan, unroll8)):
        return autotune.fastest(list(candidates), {"xla_chunked/scan": scan_seconds,
                                                   "xla_chunked/unroll8": unroll8_seconds}, scan)

    assert pick(0.1550, 0.1526) == scan  # cifar_cnn_bn with jax 0.11: 2 % apart, a tie
    assert pick(0.1550, 0.1400) == unroll8
    assert pick(0.1300, 0.1400) == scan
    assert pick(0.1550, 0.1526, candidates=[unroll8]) == unroll8  # a default that was not timed


def test_default_execution_by_jax_version(monkeypatch):
    epochs = training_epochs(DATA, loss_fn=classification, batch_size=16, augment=None, mesh=data_mesh())
    monkeypatch.setattr(layers, "XLA_CPU_CONV_FAST", True)  # jax >= 0.11 on the CPU
    assert str(autotune.default_execution(epochs)) == "xla_chunked/scan"
    with use_conv_impl("xla"):
        assert str(autotune.default_execution(epochs)) == "xla/scan"
    monkeypatch.setattr(layers, "XLA_CPU_CONV_FAST", False)  # jax 0.10
    assert str(autotune.default_execution(epochs)) == "im2col/scan"


def test_execution_settings():
    assert autotune.parse_setting("auto") == (None, None)
    assert autotune.parse_setting("xla") == ("xla", None)
    assert autotune.parse_setting("unroll8/im2col") == ("im2col", "unroll8")
    assert autotune.parse_setting("xla/stream") == ("xla", "stream")
    assert autotune.parse_setting("stream8") == (None, "stream8")
    for bad in ("unroll0", "xla/im2col", "fast", "scan/unroll2", "stream0", "streamed"):
        with pytest.raises(UsageError):
            autotune.parse_setting(bad)
    with pytest.raises(UsageError, match="precision"):
        _fit("scan", precision="float16")
    stream = lambda epoch: [{k: v[:16] for k, v in DATA.items()}]  # noqa: E731
    with pytest.raises(UsageError, match="streamed"):
        _fit("unroll2", data=stream)
    with pytest.raises(UsageError, match=r"on the device.*\(a study streams its training set with --stream\)"):
        _fit("stream8")


@pytest.mark.optimized
def test_bf16_keeps_float32_state_and_learns(shapes_easy):
    """bf16 on the CPU computes ~1.7x slower than float32: a small BatchNorm net, one epoch."""
    train, test = shapes_easy
    result = fit(get_model("shapes_deep_cnn"), {k: v[:1000] for k, v in train.items()}, test,
                 optimizer=make_optimizer("adam", 1e-3), epochs=1, batch_size=32, progress=False, precision="bf16")
    state = result.state
    for tree in (state.params, state.batch_stats, state.opt_state):
        assert {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)} == {np.dtype("float32")}
    assert result.history[-1]["val_accuracy"] >= 0.9, result.history  # chance: 1/3 (float32 and bf16: 1.0 here)


def test_the_autotune_does_not_repeat_a_hopeless_candidate():
    calls = {"fast": 0, "slow": 0}

    def call(name, seconds):
        def run():
            calls[name] += 1
            time.sleep(seconds)
        return run

    seconds = autotune._timed_rounds({"fast": call("fast", 0.0), "slow": call("slow", 0.1)})
    assert calls == {"fast": autotune.REPEATS + 1, "slow": 2}  # a warm-up and one timed call
    assert seconds["fast"] < 0.1 / autotune.HOPELESS < seconds["slow"]
