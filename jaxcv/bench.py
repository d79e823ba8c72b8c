"""Timing helpers for ``benchmarks/``: compile apart, results blocked on, medians.

Nothing here is used by tests to assert a time; tests check that the helpers measure the
right thing.
"""

from __future__ import annotations

import functools
import platform
import statistics
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np
import optax

from jaxcv.train import aot_compile, classification, create_state, data_mesh, train_epoch, train_step
from jaxcv.train.parallel import batch_sharded, put_replicated
from jaxcv.train.steps import to_float


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``fn(*args)`` and its wall seconds, measured after its results are ready."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


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


def synthetic(shape: tuple[int, ...], n: int, num_classes: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Random uint8 images and integer labels: what an epoch costs does not depend on content."""
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
            "label": rng.integers(0, num_classes, n).astype(np.int32)}


def device_info() -> dict[str, Any]:
    """The host and the JAX devices present, for a benchmark's header."""
    return {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
            "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()]}


def time_epochs(model: nn.Module, data: dict[str, np.ndarray], device: jax.Device, *, batch_size: int,
                mode: str = "scan", repeats: int = 3, optimizer: optax.GradientTransformation | None = None
                ) -> dict[str, Any]:
    """Steady-state seconds per training epoch of ``model`` over ``data`` on one ``device``.

    ``mode="scan"`` runs the epoch as one compiled call; ``mode="loop"`` calls a compiled
    step once per batch from Python, batches already on the device.  Compile time is
    measured apart, then one warm-up epoch, then the median of ``repeats`` epochs.
    """
    if mode not in ("scan", "loop"):
        raise ValueError(f"mode must be 'scan' or 'loop', got {mode!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    mesh = data_mesh([device])
    tx = optimizer or optax.adam(1e-3)
    state = put_replicated(create_state(model, tx, to_float(data["image"][:1]), jax.random.key(0)), mesh)
    n = len(data["image"]) // batch_size * batch_size
    rng = put_replicated(jax.random.key(1), mesh)
    step = functools.partial(train_step, loss_fn=classification)
    sample = put_replicated({k: v[:batch_size] for k, v in data.items()}, mesh)
    compiled, compile_s = compile_seconds(step, state, sample, rng, donate=True)
    # XLA's cost analysis counts a loop body once, so an epoch's FLOPs are a step's times steps.
    step_flops = flops(compiled)
    epoch_flops = step_flops * (n // batch_size) if step_flops else None
    if mode == "scan":
        on_device = put_replicated(data, mesh)
        fn = functools.partial(train_epoch, loss_fn=classification, batch_size=batch_size,
                               sharding=batch_sharded(mesh))
        compiled, compile_s = compile_seconds(fn, state, on_device, rng, donate=True)
        run = lambda s: compiled(s, on_device, rng)  # noqa: E731
    else:
        batches = [put_replicated({k: v[i : i + batch_size] for k, v in data.items()}, mesh)
                   for i in range(0, n, batch_size)]

        def run(s):
            for batch in batches:
                s, metrics = compiled(s, batch, rng)
            return s, metrics

    times = []
    for _ in range(repeats + 1):  # the first epoch warms caches and is not counted
        (state, _), seconds = timed(run, state)
        times.append(seconds)
    epoch_s = statistics.median(times[1:])
    return {"compile_seconds": compile_s, "epoch_seconds": epoch_s, "epoch_seconds_all": times[1:],
            "images_per_second": n / epoch_s, "examples": n,
            "flops_per_epoch": epoch_flops, "flop_per_second": epoch_flops / epoch_s if epoch_flops else None}
