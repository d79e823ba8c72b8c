"""A multi-process JAX job on this one machine: P processes of D simulated CPU devices each,
joined through a coordinator on the loopback interface, as a cluster of P hosts would be.
How the multi-process tests and the scaling benchmark run jaxcv on "several hosts"."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from typing import IO, Mapping, Sequence


def free_port() -> int:
    """A loopback TCP port that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(processes: int, devices: int) -> dict[str, str]:
    """The variables that make a process one of ``processes`` with ``devices`` CPU devices
    (less ``JAX_PROCESS_ID``); one process joins no job."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}
    if processes > 1:
        address = f"127.0.0.1:{free_port()}"
        env.update(JAX_COORDINATOR_ADDRESS=address, JAX_COORDINATOR_BIND_ADDRESS=address,
                   JAX_NUM_PROCESSES=str(processes))
    return env


def run_processes(argv: Sequence[str], processes: int, devices: int, *, timeout: float,
                  env: Mapping[str, str] | None = None,
                  per_process: Sequence[Sequence[str]] | None = None) -> list[subprocess.CompletedProcess]:
    """Run ``argv`` as ``processes`` processes of one job (``per_process[i]`` appended to
    process ``i``'s arguments) and wait for all; their exit codes and output, by process.

    Every process still running ``timeout`` seconds after the start is killed, and
    ``subprocess.TimeoutExpired`` raised with the output so far (a job that hangs ends).
    """
    shared = {**os.environ, **(env or {}), **process_env(processes, devices)}
    with tempfile.TemporaryDirectory(prefix="jaxcv-job-") as folder, contextlib.ExitStack() as files:
        procs, outputs = [], []
        for i in range(processes):
            out, err = (files.enter_context(open(os.path.join(folder, f"{i}.{kind}"), "w+")) for kind in ("out", "err"))
            outputs.append((out, err))
            procs.append(subprocess.Popen([*argv, *(per_process[i] if per_process else ())], stdout=out, stderr=err,
                                          env={**shared, **({"JAX_PROCESS_ID": str(i)} if processes > 1 else {})}))
        deadline, late = time.monotonic() + timeout, False
        try:
            for proc in procs:
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            late = True
            for proc in procs:
                proc.kill()
            for proc in procs:
                proc.wait()
        done = [subprocess.CompletedProcess(proc.args, proc.returncode, _read(out), _read(err))
                for proc, (out, err) in zip(procs, outputs)]
    if late:
        raise subprocess.TimeoutExpired(argv, timeout, output="\n".join(
            f"--- process {i} (exit {p.returncode})\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}" for i, p in enumerate(done)))
    return done


def _read(file: IO[str]) -> str:
    file.seek(0)
    return file.read()
