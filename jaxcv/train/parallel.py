"""Data parallelism: a 1-D device mesh, batches sharded on it, everything else replicated.

``jax.jit`` over this mesh is the successor of ``pmap``: gradients are reduced across
devices by XLA, and BatchNorm statistics cover the global batch.  In a multi-process job
(``jax.distributed``) the mesh spans the devices of every process: replicated values are
passed identically by every process, a batch as each process's block of it, and the
processes check that they agree before they train.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcv.errors import UsageError

DATA_AXIS = "data"
JOIN_TIMEOUT = 300
"""Seconds a process waits for all the others to join (``JAXCV_JOIN_TIMEOUT`` overrides)."""


def maybe_initialize_distributed() -> None:
    """Join a multi-process job when launched as one: by hand (``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``) or by SLURM / Open MPI with several tasks (JAX
    reads their variables); do nothing otherwise.

    A process that has not met all the others within ``JAXCV_JOIN_TIMEOUT`` seconds (the
    coordinator unreachable, fewer processes started than announced) says so in one line
    and exits with code 2: JAX itself would abort with a C++ stack trace."""
    several = any(_env_int(v, 1) > 1 for v in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))
    if "JAX_COORDINATOR_ADDRESS" not in os.environ and not several:
        return
    count, index = _env_int("JAX_NUM_PROCESSES", None), _env_int("JAX_PROCESS_ID", None)
    timeout = _env_int("JAXCV_JOIN_TIMEOUT", JOIN_TIMEOUT)
    where = os.environ.get("JAX_COORDINATOR_ADDRESS", "the coordinator")

    def give_up() -> None:  # the main thread is blocked inside JAX's connect
        print(f"error: process {index if index is not None else '?'} did not meet all "
              f"{count or 'the'} processes at {where} within {timeout} s (JAXCV_JOIN_TIMEOUT): check that "
              "every process was started, with the same JAX_NUM_PROCESSES, and can reach that address",
              file=sys.stderr, flush=True)
        os._exit(2)

    watchdog = threading.Timer(timeout, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(num_processes=count, process_id=index, initialization_timeout=timeout + 60)
    except ValueError as e:  # a process id out of range, no address found ...
        raise UsageError(f"cannot join the multi-process job: {e}") from None
    finally:
        watchdog.cancel()


def _env_int(name: str, default: int | None) -> int | None:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"environment variable {name}={text!r} must be an integer") from None


def is_primary() -> bool:
    """Whether this is process 0, the one that writes files and shows progress."""
    return jax.process_index() == 0


def fingerprint(*values: Any) -> str:
    """A digest of ``values``: dicts of host arrays by their names, shapes, dtypes and bytes,
    anything else by its ``repr``."""
    digest = hashlib.blake2b(digest_size=16)
    for value in values:
        if isinstance(value, Mapping) and all(isinstance(v, np.ndarray) for v in value.values()):
            for name in sorted(value):
                array = np.ascontiguousarray(value[name])
                digest.update(f"{name}{array.shape}{array.dtype}".encode())
                digest.update(array.data)
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def check_processes_agree(what: str, *values: Any) -> None:
    """Refuse to go on when the processes of a multi-process job hold different ``values``
    (``fingerprint``'s: a study started with other options on one host, another dataset
    ...): every process raises the same ``UsageError``.  Free on one process."""
    if jax.process_count() == 1:
        return
    digest = np.frombuffer(bytes.fromhex(fingerprint(*values)), np.uint32)
    every = np.asarray(multihost_utils.process_allgather(digest))
    if odd := [i for i, d in enumerate(every) if not np.array_equal(d, every[0])]:
        raise UsageError(f"the processes disagree on {what}: process(es) {', '.join(map(str, odd))} differ from "
                         "process 0; start every process with the same command line and the same data")


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every host)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh, stacked: bool = False) -> NamedSharding:
    """Leading (batch) axis split over the mesh; with ``stacked``, the second, for a stack of
    batches."""
    return NamedSharding(mesh, P(None, DATA_AXIS) if stacked else P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A batch must split evenly over the devices."""
    if batch_size <= 0 or batch_size % mesh.size:
        raise UsageError(f"batch size {batch_size} must be a positive multiple of the "
                         f"{mesh.size} device(s) it is split over")


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Copy a pytree of host arrays to every device of ``mesh``; with several processes,
    every one must pass the same values."""
    return jax.device_put(tree, replicated(mesh))


def put_local_batch(batch: Any, sharding: NamedSharding) -> Any:
    """One global batch from each process's block of it (a pytree of host arrays): process
    ``i`` of ``P`` holds rows ``[i * n, (i + 1) * n)`` of a global batch of ``P * n`` (of the
    batch axis ``sharding`` splits, for a stack of batches).  On one process, ``jax.device_put``."""
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a), batch)


def local_block(n: int) -> slice:
    """This process's block of ``n`` rows split evenly over all processes (``put_local_batch``'s layout)."""
    count = jax.process_count()
    if n % count:
        raise UsageError(f"batch size {n} must be a multiple of the {count} processes it is split over")
    size = n // count
    return slice(jax.process_index() * size, (jax.process_index() + 1) * size)
