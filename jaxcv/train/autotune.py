"""Which convolution formulation and epoch driver train fastest here, found by measurement.

Neither choice changes what a model learns beyond float rounding (im2col and XLA's
convolution compute the same sums; every driver follows the same ``epoch_plan``), but their
speeds differ by backend, jax version and model: on XLA:CPU the convolutions of jax's own
gradients are an order of magnitude slower inside a ``lax.scan`` body than outside one (JAX
issue 12868; ``xla_chunked`` avoids them), and jax 0.11 runs XLA's convolution ~4x faster than
jax 0.10 did.  So ``resolve`` times each
candidate (``CONV_IMPLS``: im2col, xla, xla_chunked, x the epochs' ``tunable_drivers``: scan, unroll1
and unroll8 on the device, stream and stream8 when streamed) on a few steps of the real
model and data, compile time apart, and keeps the fastest (the default execution unless another
is ``TIE`` faster), cached on disk per backend, device, jax version and model / input / batch /
precision signature (``cache_path``).  The processes
of a multi-process job time the candidates together and take process 0's pick.

An *execution setting* pins any part of the choice: ``"auto"`` (measure), ``"xla"`` or
``"im2col"`` (that formulation, the driver measured), ``"scan"`` or ``"unroll8"`` (that
driver; the formulation a ``use_conv_impl`` block pins, else the fast one on the devices
trained on, not measured), or both as ``"xla/unroll8"``.  ``fit`` takes it as
``execution=``, studies as ``--execution``, and ``$JAXCV_EXECUTION`` gives the default; without
one, ``"default"`` (``DEFAULT``), what measured fastest on ``mnist_cnn`` and ``cifar_cnn``
(docs/cpu-performance.md) without measuring each model again (a compile per candidate, and
minutes of the plain ``xla`` formulation in a scan on the CPU): ``default_execution``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jaxcv.errors import UsageError
from jaxcv.files import read_json, write_json
from jaxcv.models.layers import CONV_IMPLS, ConvImpl, conv_impl_for, pinned_conv_impl, use_conv_impl
from jaxcv.train import parallel
from jaxcv.train.epochs import DeviceEpochs, StreamedEpochs, batches_per_call, steps_per_call
from jaxcv.train.state import TrainState

TIMED_STEPS = 16
"""Steps per timed call: two calls of ``"unroll8"``, a scan of as many steps."""
REPEATS = 3
"""Timed calls per candidate after a warm-up one; their median counts."""
HOPELESS = 3.0
"""A candidate this many times slower than the best in the first timed call is not timed again."""
TIE = 0.05
"""The default execution is kept unless a candidate takes this much less time per step: closer
is the noise of a few timed steps (here im2col's 8 steps per call beat its scan by 2 % per step
on ``mnist_cnn`` with jax 0.10 and took 6 % longer over whole epochs), and the default's scan
compiled 2.4-3.5x faster than 8 unrolled steps (the README's autotune table)."""
ENV = "JAXCV_EXECUTION"
DEFAULT = "default"
"""The setting without one: ``default_execution``."""
CACHE_ENV = "JAXCV_AUTOTUNE_CACHE"


@dataclasses.dataclass(frozen=True)
class Execution:
    """How training runs: the convolution formulation and the epoch driver."""

    conv: ConvImpl
    driver: str

    def __str__(self) -> str:
        return f"{self.conv}/{self.driver}"

    @classmethod
    def parse(cls, text: str) -> Execution:
        conv, driver = parse_setting(text)
        if conv is None or driver is None:
            raise UsageError(f"execution {text!r} must name a formulation and a driver, e.g. 'xla/unroll8'")
        return cls(conv, driver)


@dataclasses.dataclass(frozen=True)
class Choice:
    """The execution ``resolve`` chose, how (``pinned``, ``cached`` or ``measured``), and the
    measurements it rests on (seconds per step and compile seconds per candidate)."""

    execution: Execution
    source: str
    seconds_per_step: dict[str, float] = dataclasses.field(default_factory=dict)
    compile_seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-ready, for benchmark records and study configs."""
        return {"execution": str(self.execution), "source": self.source,
                **({"seconds_per_step": self.seconds_per_step, "compile_seconds": self.compile_seconds}
                   if self.seconds_per_step else {})}


def parse_setting(text: str) -> tuple[ConvImpl | None, str | None]:
    """An execution setting as ``(conv, driver)``, ``None`` where it is left to measure
    (``DEFAULT`` leaves both to the backend and the epochs, unmeasured)."""
    conv = driver = None
    if text == DEFAULT:
        return conv, driver
    for part in (p for p in text.split("/") if p != "auto"):
        if part in CONV_IMPLS and conv is None:
            conv = part
        elif part not in CONV_IMPLS and driver is None:
            (batches_per_call if part.startswith("stream") else steps_per_call)(part)  # a UsageError if neither
            driver = part
        else:
            raise UsageError(f"execution {text!r} names a formulation or a driver twice")
    return conv, driver


def setting(explicit: str | None) -> str:
    """The execution setting in force: ``explicit`` if given, else ``$JAXCV_EXECUTION``, else
    ``DEFAULT``."""
    return explicit if explicit is not None else os.environ.get(ENV, DEFAULT)


def cache_path() -> Path:
    """``$JAXCV_AUTOTUNE_CACHE``, else ``jaxcv-autotune.json`` in JAX's compilation cache
    folder when one is set, else ``~/.cache/jaxcv/autotune.json``."""
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV])
    folder = jax.config.jax_compilation_cache_dir
    return Path(folder) / "jaxcv-autotune.json" if folder else Path.home() / ".cache" / "jaxcv" / "autotune.json"


def signature(state: TrainState, epochs: DeviceEpochs | StreamedEpochs, rngs: jax.Array, mesh: Mesh
              ) -> dict[str, Any]:
    """What the fastest execution depends on: backend, device, jax, model, input, batch,
    models trained at once, devices, precision and the data's source."""
    device = mesh.devices.flat[0]
    return {"backend": device.platform, "device": device.device_kind, "devices": mesh.size,
            "jax": jax.__version__, "model": repr(state.model), "input": list(epochs.sample().shape[1:]),
            "batch_size": epochs.batch_size, "members": int(rngs.shape[0]),
            "precision": epochs.options["precision"], "epochs": type(epochs).__name__}


def resolve(text: str | None, epochs: DeviceEpochs | StreamedEpochs, state: TrainState, rngs: jax.Array,
            active: jax.Array, signature: dict[str, Any], verbose: bool = False) -> Choice:
    """The execution for ``epochs`` of ``state``'s models under setting ``text`` (``setting``):
    pinned where the setting says, else the cached or newly measured fastest candidate."""
    text = setting(text)
    if text == DEFAULT:
        return Choice(default_execution(epochs), "pinned")
    conv, driver = parse_setting(text)
    if driver is not None:
        epochs.with_driver(driver)  # a UsageError if it does not apply
    convs = ([conv] if conv is not None else
             [_unmeasured_conv(epochs)] if driver is not None or pinned_conv_impl() else list(CONV_IMPLS))
    drivers = [driver] if driver is not None else list(epochs.tunable_drivers)
    candidates = [Execution(c, d) for c in convs for d in drivers]
    if len(candidates) == 1:
        return Choice(candidates[0], "pinned")
    key = _key({**signature, "candidates": [str(c) for c in candidates]})
    entry = _read_cache().get(key) if parallel.is_primary() else None
    cached = _process_zeros(candidates.index(Execution.parse(entry["execution"])) if entry else -1)
    if cached >= 0:
        entry = entry or {}
        return Choice(candidates[cached], "cached", entry.get("seconds_per_step", {}), entry.get("compile_seconds", {}))
    if verbose and parallel.is_primary():
        print(f"autotune: timing {', '.join(map(str, candidates))} for {signature['model'].split('(')[0]} "
              f"(once; cached in {cache_path()})", file=sys.stderr, flush=True)
    per_step, compile_s = _time(candidates, epochs, state, rngs, active)
    best = _process_zeros(candidates.index(fastest(candidates, per_step, default_execution(epochs))))
    choice = Choice(candidates[best], "measured", per_step, compile_s)
    if parallel.is_primary():
        _write_cache(key, {**choice.record(), "signature": signature,
                           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    return choice


def fastest(candidates: list[Execution], seconds_per_step: dict[str, float], default: Execution) -> Execution:
    """The candidate with the fewest seconds per step, or ``default`` when it is a candidate
    within ``TIE`` of that."""
    best = min(candidates, key=lambda c: seconds_per_step[str(c)])
    if default in candidates and seconds_per_step[str(default)] <= (1 + TIE) * seconds_per_step[str(best)]:
        return default
    return best


def default_execution(epochs: DeviceEpochs | StreamedEpochs) -> Execution:
    """The execution nothing is measured for, on the devices ``epochs`` run on (not the default
    backend's: a CPU mesh on a GPU host): the epoch's own driver (the scan on the device, 8
    batches per call when streamed) with the fast formulation there (``conv_impl_for``), or a
    ``use_conv_impl`` block's."""
    return Execution(_unmeasured_conv(epochs), epochs.driver)


def _unmeasured_conv(epochs: DeviceEpochs | StreamedEpochs) -> ConvImpl:
    """The formulation when it is not measured: a ``use_conv_impl`` block's, else the fast one
    on the devices ``epochs`` run on."""
    return pinned_conv_impl() or conv_impl_for(epochs.mesh.devices.flat[0].platform)


def _process_zeros(index: int) -> int:
    """Process 0's ``index`` (or bool) on every process: the processes of a job run the same
    programs, so process 0's cache and measurements decide for all of them."""
    if jax.process_count() == 1:
        return index
    return int(multihost_utils.broadcast_one_to_all(np.int32(index)))


def _time(candidates: list[Execution], epochs: DeviceEpochs | StreamedEpochs, state: TrainState,
          rngs: jax.Array, active: jax.Array) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per step of each candidate (``_timed_rounds`` of calls of ``TIMED_STEPS``
    steps) and its compile seconds."""
    calls, compile_s = {}, {}
    for candidate in candidates:
        with use_conv_impl(candidate.conv):
            trial = epochs.sampled(TIMED_STEPS).with_driver(candidate.driver)
            start = time.perf_counter()
            trial.compile(state, rngs, active)
            compile_s[str(candidate)] = time.perf_counter() - start
        calls[str(candidate)] = _call(trial, jax.tree.map(jnp.copy, state), rngs, active)  # each donates its own copy
    return {name: t / TIMED_STEPS for name, t in _timed_rounds(calls).items()}, compile_s


def _call(trial: DeviceEpochs | StreamedEpochs, state: TrainState, rngs: jax.Array, active: jax.Array
          ) -> Callable[[], None]:
    """One call of ``trial``'s epoch, blocked on its result, each on the state the last left."""
    def call() -> None:
        nonlocal state
        state = jax.block_until_ready(trial(state, rngs, active, 0))[0]
    return call


def _timed_rounds(calls: dict[str, Callable[[], None]]) -> dict[str, float]:
    """The median seconds of each call over ``REPEATS`` rounds after a warm-up round, the
    rounds going round the calls in turn (a load that comes and goes weighs on all alike); a
    call ``HOPELESS`` times slower than the fastest in the first timed round is not repeated
    (as process 0 finds: the processes of a job make the same calls)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(REPEATS + 1):
        for name, call in calls.items():
            if round_ > 1 and _process_zeros(times[name][1] > HOPELESS * min(t[1] for t in times.values())):
                continue  # no median can save it (XLA's conv in a scan body on the CPU: ~10x slower)
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def _key(signature: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:24]


def _read_cache() -> dict[str, Any]:
    path = cache_path()
    return read_json(path) if path.exists() else {}


def _write_cache(key: str, entry: dict[str, Any]) -> None:
    """Add ``entry`` (atomically: a concurrent reader never sees half a file)."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**_read_cache(), key: entry})
