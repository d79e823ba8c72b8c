"""Timing helpers for ``benchmarks/``: compile apart, results blocked on, medians.

Nothing here is used by tests to assert a time; tests check that the helpers measure the
right thing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import statistics
import time
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcv.errors import UsageError
from jaxcv.models import count_params, list_models
from jaxcv.models.layers import use_conv_impl
from jaxcv.train import (aot_compile, autotune, classification, create_state, data_mesh, host_batches, members,
                         reconstruction, regression, train_step)
from jaxcv.train.epochs import training_epochs
from jaxcv.train.losses import LossFn
from jaxcv.train.parallel import batch_sharded, check_batch_size, put_replicated
from jaxcv.train.steps import to_float

# Dense peak FLOP/s of a float32 matmul at JAX's default precision, by a substring of
# ``device_kind``: TF32 tensor cores from Ampere on (XLA uses them for float32 dots and
# convolutions unless asked for "highest" precision), FP32 CUDA cores before.  Vendor figures
# for the SXM parts (PCIe parts run lower clocks); more specific names come first.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 494.7e12), ("H100 PCIe", 378.0e12), ("H100", 494.7e12), ("A100", 156.0e12),
    ("L40S", 91.6e12), ("L4", 60.0e12), ("A10G", 31.2e12), ("A10", 62.5e12), ("V100", 15.7e12),
    ("T4", 8.1e12), ("RTX 4090", 82.6e12), ("RTX 3090", 35.6e12), ("RTX 3080", 29.8e12),
    ("RTX 2080 Ti", 13.4e12), ("GTX 1080 Ti", 11.3e12), ("GTX 970", 3.9e12),
)


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``fn(*args)`` and its wall seconds, measured after its results are ready."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def median_seconds(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """The first (cold: compiling) call's seconds and the median of ``repeats`` warm calls."""
    _, cold = timed(fn)
    warm = [timed(fn)[1] for _ in range(repeats)]
    return {"seconds": statistics.median(warm), "seconds_all": warm, "first_call_seconds": cold}


_COMPILE_EVENTS = frozenset(f"/jax/core/compile/{stage}_duration"
                            for stage in ("jaxpr_trace", "jaxpr_to_mlir_module", "backend_compile"))


@contextlib.contextmanager
def compile_clock() -> Iterator[list[float]]:
    """Seconds JAX spends tracing, lowering and compiling within the block, from its own
    monitoring events: ``[seconds]``, read after the block.  For calls that compile inside (a
    first call's time less a second's is noise where a call runs much longer than it compiles)."""
    spent = [0.0]

    def listen(event: str, seconds: float, **_: Any) -> None:
        if event in _COMPILE_EVENTS:
            spent[0] += seconds

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield spent
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def compile_seconds(fn: Callable[..., Any], *args: Any, donate: bool = False) -> tuple[Any, float]:
    """Ahead-of-time compile ``fn`` for ``args``: the executable and the seconds it took."""
    start = time.perf_counter()
    compiled = aot_compile(fn, *args, donate=donate)
    return compiled, time.perf_counter() - start


def flops(compiled: Any) -> float | None:
    """FLOPs of one call of a compiled executable, from XLA's cost analysis (if it gives any)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else {}
    value = (analysis or {}).get("flops")
    return float(value) if value else None


def peak_flop_per_second(device: jax.Device) -> float | None:
    """The device's peak float32 FLOP/s from ``PEAK_FLOPS``; ``None`` when unknown (CPUs)."""
    if device.platform != "gpu":
        return None
    return next((peak for name, peak in PEAK_FLOPS if name.lower() in device.device_kind.lower()), None)


def synthetic(shape: tuple[int, ...], n: int, num_classes: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Random uint8 images and integer labels: what an epoch costs does not depend on content."""
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
            "label": rng.integers(0, num_classes, n).astype(np.int32)}


LOSSES: dict[str, LossFn] = {"classification": classification, "regression": regression,
                             "reconstruction": reconstruction}
"""Tasks a benchmark workload may train on: name -> loss."""


class Workload(NamedTuple):
    """What one benchmarked model trains on: input shape, examples in a real epoch, task."""

    shape: tuple[int, ...]
    examples: int
    task: str = "classification"


WORKLOADS: dict[str, Workload] = {
    "mnist_cnn": Workload((28, 28, 1), 60_000),
    "keras_mnist_cnn": Workload((28, 28, 1), 60_000),
    "cifar_cnn": Workload((32, 32, 3), 50_000),
    "cifar_cnn_bn": Workload((32, 32, 3), 50_000),
    "shapes_linear": Workload((72, 72, 1), 3_000),
    "shapes_shallow_cnn": Workload((72, 72, 1), 3_000),
    "shapes_deep_cnn": Workload((72, 72, 1), 3_000),
    "vertex_regressor": Workload((72, 72, 1), 3_000, "regression"),
    "hourglass": Workload((72, 72, 1), 3_000, "reconstruction"),
}
"""The study models the benchmarks time; names missing from the model registry are skipped."""


def available_workloads(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``names`` split into those benchmarkable here and those the model registry lacks;
    a name with no workload is an error."""
    if unknown := [n for n in names if n not in WORKLOADS]:
        raise UsageError(f"no benchmark workload for {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    registered = set(list_models())
    return [n for n in names if n in registered], [n for n in names if n not in registered]


def load() -> float | None:
    """The 1-minute load average (other processes compete for the cores), where known."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def output_shape(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one example's output of ``model`` for inputs of ``shape`` (no compute)."""
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    return jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x)[0][0], x).shape[1:]


def synthetic_task(model: nn.Module, shape: tuple[int, ...], n: int, task: str, seed: int = 0
                   ) -> tuple[dict[str, np.ndarray], LossFn]:
    """Synthetic data for ``task`` shaped to ``model``'s output, and the task's loss.

    ``classification``: labels over the model's classes; ``regression``: normal targets of the
    output's shape; ``reconstruction``: the image itself in [0, 1] (an autoencoder's target).
    """
    if task not in LOSSES:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(LOSSES)}")
    out = output_shape(model, shape)
    data = synthetic(shape, n, num_classes=out[-1], seed=seed)
    if task == "regression":
        data = {"image": data["image"],
                "target": np.random.default_rng(seed + 1).normal(size=(n, *out)).astype(np.float32)}
    elif task == "reconstruction":
        if tuple(out) != tuple(shape):
            raise ValueError(f"a reconstruction model must output its input's shape {shape}, got {out}")
        data = {"image": data["image"], "target": data["image"].astype(np.float32) / 255.0}
    return data, LOSSES[task]


def device_info() -> dict[str, Any]:
    """The host and the JAX devices present, for a benchmark's header."""
    return {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
            "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()]}


def time_epochs(model: nn.Module, data: dict[str, np.ndarray], devices: jax.Device | Sequence[jax.Device], *,
                batch_size: int, execution: str | None = None, repeats: int = 3, loss_fn: LossFn = classification,
                optimizer: optax.GradientTransformation | None = None, precision: str = "float32") -> dict[str, Any]:
    """Steady-state seconds per training epoch of ``model`` over ``data`` on ``devices``, as
    ``fit`` trains it (data on the device, or streamed from the host (``host_batches``) for a
    ``stream`` driver; several devices splitting each batch).

    ``execution`` is a setting of ``jaxcv.train.autotune``: a formulation and a driver
    (``"xla/unroll8"``) or ``"auto"`` (the autotune's choice, measured now or cached); default:
    ``fit``'s (``autotune.default_execution``).  Compile time is measured apart,
    then one warm-up epoch, then the median of ``repeats`` epochs.  FLOPs come from XLA's cost
    analysis of one compiled step.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    devices = [devices] if isinstance(devices, jax.Device) else list(devices)
    mesh = data_mesh(devices)
    check_batch_size(batch_size, mesh)
    n = len(data["image"]) // batch_size * batch_size
    if n == 0:
        raise UsageError(f"{len(data['image'])} examples make no batch of {batch_size}")
    one = create_state(model, optimizer or optax.adam(1e-3), to_float(data["image"][:1]), jax.random.key(0))
    state = put_replicated(members.stack([one]), mesh)
    rngs = jnp.stack([jax.random.key(1)])  # placed by the compiled calls (a key array cannot be put across processes)
    active = jnp.ones(1, bool)
    setting = execution or autotune.DEFAULT
    streamed = (autotune.parse_setting(setting)[1] or "").startswith("stream")
    epochs = training_epochs(host_batches(data, batch_size) if streamed else data, loss_fn=loss_fn,
                             batch_size=batch_size, augment=None, mesh=mesh, precision=precision)
    choice = autotune.resolve(setting, epochs, state, rngs, active,
                              autotune.signature(state, epochs, rngs, mesh))
    epochs = epochs.with_driver(choice.execution.driver)
    with use_conv_impl(choice.execution.conv):
        # XLA's cost analysis counts a loop body once, so an epoch's FLOPs are a step's times steps.
        step = functools.partial(train_step, loss_fn=loss_fn, precision=precision)
        sample = jax.device_put({k: v[:batch_size] for k, v in data.items()}, batch_sharded(mesh))
        step_flops = flops(aot_compile(step, put_replicated(one, mesh), sample, rngs[0]))
        epoch_flops = step_flops * (n // batch_size) if step_flops else None
        start = time.perf_counter()
        epochs.compile(state, rngs, active)
        compile_s = time.perf_counter() - start
    times = []
    for epoch in range(repeats + 1):  # the first epoch warms caches and is not counted
        (state, _), seconds = timed(epochs, state, rngs, active, epoch)
        times.append(seconds)
    params = count_params(one.params)
    epoch_s = statistics.median(times[1:])
    achieved = epoch_flops / epoch_s if epoch_flops else None
    peak = peak_flop_per_second(devices[0])
    peak = peak * len(devices) if peak else None
    return {"execution": choice.record(), "precision": precision, "compile_seconds": compile_s,
            "epoch_seconds": epoch_s, "epoch_seconds_all": times[1:], "images_per_second": n / epoch_s,
            "examples": n, "devices": len(devices), "params": params,
            "flops_per_epoch": epoch_flops, "flop_per_second": achieved, "peak_flop_per_second": peak,
            "fraction_of_peak": achieved / peak if achieved and peak else None}
