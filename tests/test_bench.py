import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcv.bench import (available_workloads, compile_clock, compile_seconds, flops, peak_flop_per_second,
                         synthetic, synthetic_task, time_epochs, timed)
from jaxcv.errors import UsageError
from jaxcv.models import count_params, get_model

ROOT = Path(__file__).resolve().parents[1]
RECORD_FIELDS = {"model", "impl", "device", "batch_size", "epoch_seconds", "images_per_second", "compile_seconds"}


def test_flops_of_a_known_matmul():
    compiled, seconds = compile_seconds(lambda a, b: a @ b, jnp.ones((8, 16)), jnp.ones((16, 4)))
    assert seconds > 0
    assert flops(compiled) == pytest.approx(2 * 8 * 16 * 4, rel=0.1)


def test_flops_of_a_dense_layer():
    layer = nn.Dense(32)
    x = jnp.ones((64, 100))
    params = layer.init(jax.random.key(0), x)
    compiled, _ = compile_seconds(layer.apply, params, x)
    assert flops(compiled) == pytest.approx(2 * 64 * 100 * 32 + 64 * 32, rel=0.05)  # matmul + bias


def test_timed_returns_ready_results_and_compile_is_ahead_of_time():
    compiled, _ = compile_seconds(lambda x: jnp.sin(x) @ x, jnp.ones((256, 256)))
    assert isinstance(compiled, jax.stages.Compiled)
    out, seconds = timed(compiled, jnp.ones((256, 256)))
    assert out.is_ready() and seconds > 0


def test_compile_clock_counts_compiling_not_running():
    f = jax.jit(lambda x: jnp.cos(x) @ x)
    x = jnp.ones((64, 64))
    with compile_clock() as first:
        timed(f, x)
    with compile_clock() as again:
        timed(f, x)  # compiled already: nothing to count
    assert first[0] > 0 and again[0] == 0


@pytest.mark.parametrize("execution", ["im2col/scan", "xla/unroll2", "im2col/stream2"])
def test_time_epochs_reports_a_whole_epoch(execution):
    data = synthetic((28, 28, 1), 100)
    r = time_epochs(get_model("mnist_cnn"), data, jax.devices()[0], batch_size=32, execution=execution, repeats=3)
    assert r["execution"] == {"execution": execution, "source": "pinned"} and r["precision"] == "float32"
    assert r["examples"] == 96 and len(r["epoch_seconds_all"]) == 3
    assert r["epoch_seconds"] == sorted(r["epoch_seconds_all"])[1]  # the median
    assert r["images_per_second"] == pytest.approx(96 / r["epoch_seconds"])
    assert r["flops_per_epoch"] > 3 * 96 * 12e6  # forward + backward of a ~16 MFLOP network
    assert r["params"] == count_params(get_model("mnist_cnn").init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))["params"])
    assert r["peak_flop_per_second"] is None and r["fraction_of_peak"] is None  # a CPU's peak is unknown


def test_time_epochs_rejects_bad_input():
    data = synthetic((32, 32, 3), 64)
    with pytest.raises(UsageError, match="epoch driver"):
        time_epochs(get_model("cifar_cnn"), data, jax.devices()[0], batch_size=32, execution="pmap")
    with pytest.raises(UsageError, match="no batch"):
        time_epochs(get_model("cifar_cnn"), data, jax.devices()[0], batch_size=128)


def test_peak_flops_by_device_kind():
    gpu = lambda kind: types.SimpleNamespace(platform="gpu", device_kind=kind)  # noqa: E731
    assert peak_flop_per_second(gpu("NVIDIA H100 80GB HBM3")) == 494.7e12
    assert peak_flop_per_second(gpu("NVIDIA H100 PCIe")) == 378.0e12
    assert peak_flop_per_second(gpu("Tesla T4")) == 8.1e12
    assert peak_flop_per_second(gpu("Some Future GPU")) is None
    assert peak_flop_per_second(jax.devices("cpu")[0]) is None


def test_synthetic_tasks_match_the_model_output():
    data, _ = synthetic_task(get_model("mnist_cnn", num_classes=3), (28, 28, 1), 50, "classification")
    assert data["image"].dtype == np.uint8 and set(np.unique(data["label"])) <= {0, 1, 2}
    data, loss = synthetic_task(get_model("mnist_cnn", num_classes=6), (28, 28, 1), 5, "regression")
    assert data["target"].shape == (5, 6) and loss.__name__ == "regression"
    with pytest.raises(ValueError, match="input's shape"):
        synthetic_task(get_model("mnist_cnn"), (28, 28, 1), 5, "reconstruction")
    with pytest.raises(ValueError, match="unknown task"):
        synthetic_task(get_model("mnist_cnn"), (28, 28, 1), 5, "segmentation")


def test_workloads_skip_unregistered_models():
    found, absent = available_workloads(["mnist_cnn", "hourglass"])
    assert found[0] == "mnist_cnn" and found + absent == ["mnist_cnn", "hourglass"]
    with pytest.raises(UsageError, match="no benchmark workload"):
        available_workloads(["resnet50"])


def test_epoch_times_quick_writes_records(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "epoch_times.py"), "--quick", "--models",
                           "mnist_cnn", "--examples", "256", "--modes", "im2col/scan", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads(out.read_text())
    assert len(records) == 1 and RECORD_FIELDS <= set(records[0])
    assert records[0]["model"] == "mnist_cnn" and records[0]["impl"] == "jaxcv-im2col/scan"
    assert records[0]["examples"] == 256 and records[0]["execution"] == {"execution": "im2col/scan", "source": "pinned"}
    assert "| mnist_cnn | jaxcv-im2col/scan | im2col/scan (pinned) |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 5_000


@pytest.mark.parametrize("impl, script, env, modules", [
    ("torch", "torch_cnn.py", {}, ("torch",)),
    ("keras-tf", "keras_cnn.py", {"KERAS_BACKEND": "tensorflow"}, ("keras", "tensorflow")),
])
def test_peer_builds_the_same_model(tmp_path, impl, script, env, modules):
    for module in modules:  # keras alone (the test extra) is not the Keras-on-TensorFlow peer
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    np.savez(tmp_path / "d.npz", **synthetic((28, 28, 1), 256))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers" / script), str(tmp_path / "d.npz"),
                           "mnist_cnn", "128", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert RECORD_FIELDS <= set(record) and record["impl"] == impl and record["examples"] == 256
    assert record["params"] == 263_418  # jaxcv's mnist_cnn


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_puts_cpu_and_gpu_side_by_side():
    epoch_times = _script("epoch_times")
    base = {"model": "mnist_cnn", "batch_size": 128, "examples": 1024, "compile_seconds": 1.0, "load": 0.5}
    tuned = {"execution": "xla/unroll8", "source": "measured",
             "seconds_per_step": {"xla/unroll8": 0.01, "im2col/scan": 0.02}, "compile_seconds": {"xla/unroll8": 3.0, "im2col/scan": 1.0}}
    records = [
        {**base, "impl": "jaxcv-auto", "device": "cpu:cpu", "epoch_seconds": 10.0, "images_per_second": 102.4,
         "flop_per_second": 5e9, "fraction_of_peak": None, "precision": "float32", "execution": tuned},
        {**base, "impl": "jaxcv-auto", "device": "gpu:NVIDIA H100 80GB HBM3", "epoch_seconds": 0.1,
         "images_per_second": 10240.0, "flop_per_second": 5e11, "fraction_of_peak": 0.001, "precision": "float32",
         "execution": {"execution": "xla/scan", "source": "cached"}},
        {**base, "impl": "jaxcv-im2col/scan-bf16", "device": "cpu:cpu", "epoch_seconds": 8.0, "images_per_second": 128.0,
         "precision": "bf16", "execution": {"execution": "im2col/scan", "source": "pinned"}},
        {**base, "impl": "torch", "device": "cpu", "epoch_seconds": 5.0, "images_per_second": 204.8},
    ]
    lines = epoch_times.summary_table(records).splitlines()
    assert len(lines) == 5
    assert ("| mnist_cnn | jaxcv-auto | xla/unroll8 (measured) / xla/scan (cached) | 1024 | 128 | 10.00 | 102 | 0.100 "
            "| 10,240 | 100.0× | 1.00 |") in lines[2]
    assert "| 0.1% |" in lines[2] and "| 5.0 / 500.0 |" in lines[2]
    assert "| 8.00 | 128 | - | - | - | 0.80 |" in lines[3]  # bf16 is not the float32 reference
    assert "| mnist_cnn | torch | - | 1024 | 128 | 5.00 | 205 | - | - | - | 0.50 |" in lines[4]
    why = epoch_times.autotune_table(records).splitlines()
    assert len(why) == 3 and "**xla/unroll8: 10.0 ms** (3.0 s compile); im2col/scan: 20.0 ms (1.0 s compile)" in why[2]
    assert epoch_times.peer_impls("torch,keras") == ["torch", "keras-jax", "keras-tf"]
    with pytest.raises(UsageError, match="unknown peer"):
        epoch_times.peer_impls("mxnet")


@pytest.mark.parametrize("argv,message", [
    (["--models", "mnist_cnn", "--examples", "100"],
     "--batch-size 128 is more than an epoch's examples: mnist_cnn 100"),
    (["--models", "shapes_linear", "--peers", "torch"], "the peers time mnist_cnn, cifar_cnn, cifar_cnn_bn only"),
    (["--peers", "torch", "--peer-python", "/no/such/python"], "/no/such/python: no program that can be run"),
    (["--json", "."], "argument --json: . is a folder; give a file name"),
])
def test_epoch_times_refuses_before_timing_what_would_fail_or_be_skipped(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        _script("epoch_times").main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_rounds_keep_the_median_round_and_compare_each_round():
    epoch_times = _script("epoch_times")
    base = {"model": "cifar_cnn", "device": "cpu:cpu", "examples": 4096}
    records = [{**base, "impl": impl, "round": k, "epoch_seconds": t, "tag": f"{impl}{k}"}
               for k, (ours, theirs) in enumerate([(2.0, 2.2), (3.0, 2.7), (2.5, 2.4)])
               for impl, t in [("jaxcv-default", ours), ("jaxcv-im2col/scan", ours * 2), ("torch", theirs)]]
    medians = epoch_times.median_rounds(records)
    assert [(r["impl"], r["tag"], r["round_seconds"]) for r in medians] == [
        ("jaxcv-default", "jaxcv-default2", [2.0, 3.0, 2.5]),
        ("jaxcv-im2col/scan", "jaxcv-im2col/scan2", [4.0, 6.0, 5.0]),
        ("torch", "torch2", [2.2, 2.7, 2.4])]
    # each round's peer time over that round's fastest jaxcv time: 1.10, 0.90, 0.96
    assert epoch_times.ratio_table(records).splitlines()[2] == "| cifar_cnn | torch | 1.10, 0.90, 0.96 | 0.96 |"
