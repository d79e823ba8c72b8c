"""Data parallelism: a 1-D device mesh, batches sharded on it, everything else replicated.

``jax.jit`` over this mesh is the successor of ``pmap``: gradients are reduced across
devices by XLA, and BatchNorm statistics cover the global batch.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcv.errors import UsageError

DATA_AXIS = "data"


def maybe_initialize_distributed() -> None:
    """Join a multi-host job when launched as one (``JAX_COORDINATOR_ADDRESS`` set, or a
    SLURM / Open MPI launch of several tasks); do nothing on a single host."""
    several = any(int(os.environ.get(v, "1")) > 1 for v in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))
    if "JAX_COORDINATOR_ADDRESS" in os.environ or several:
        jax.distributed.initialize()


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every host)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the mesh."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A batch must split evenly over the devices."""
    if batch_size <= 0 or batch_size % mesh.size:
        raise UsageError(f"batch size {batch_size} must be a positive multiple of the "
                         f"{mesh.size} device(s) it is split over")


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Copy a pytree of host arrays to every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))
