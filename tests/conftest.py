"""Shared fixtures: one TFDS data dir per test session holding the embedded datasets, the
study scripts run in-process, and the real MNIST beside the project (skipped where absent)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MNIST = SHARED_DATA / "mnist"


def _release(version_string: str) -> tuple[int, int]:
    """``(major, minor)`` of a version such as ``0.10.2``."""
    major, minor = version_string.split(".")[:2]
    return int(major), int(minor)


JAXLIB_0_10 = _release(version("jaxlib")) < (0, 11)
"""jaxlib 0.10, whose XLA:CPU has the legacy emitters and compiles the unmarked tests right at -O0
(jaxlib 0.11's, at -O0, gave shapes_deep_cnn a NaN loss in its first epoch)."""


def pytest_configure(config):
    """One fresh on-disk XLA cache per session, inherited by the scripts the tests run: a
    program compiles once per session however many tests (and processes) need it, however
    short its compile.  A fresh default TFDS data dir too: no test reads or writes the user's
    ``~/tensorflow_datasets``, and none may download.  Training runs the default execution
    whatever ``$JAXCV_EXECUTION`` says (the numbers tests pin down; no autotune per test model);
    ``tests/test_execution.py`` tests the other executions and the autotune.  Under
    pytest-xdist the controller runs this first and its workers inherit its environment: they
    share its XLA cache and its data dir for the embedded datasets."""
    _session_dir(config, "JAX_COMPILATION_CACHE_DIR", "jaxcv-xla-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    _session_dir(config, "TFDS_DATA_DIR", "jaxcv-tfds-", replace=True)
    # the embedded datasets, generated once for all workers (jaxcv prepares a dataset under a lock)
    _session_dir(config, "JAXCV_TEST_DATA_DIR", "jaxcv-test-data-")
    os.environ.setdefault("JAXCV_OFFLINE", "1")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several workers share a GPU
    # Compile for a short test, not a long run: half of the tests' time is XLA:CPU compiling.
    # LLVM at -O1 instead of XLA's default compiles the tests' many small programs ~35 % faster.
    # On jaxlib 0.10, the legacy elemental emitters instead of the MLIR fusion emitters compile
    # ~40 % faster again (one training step, median of 4-5 fresh processes: lenet_model1 3.1 ->
    # 1.8 s, cifar_cnn 2.4 -> 1.3 s, mnist_cnn 1.8 -> 0.9 s) and run it about 10 % slower; jaxlib
    # 0.11 has only the fusion emitters, and aborts on the flag it no longer knows.  On jaxlib
    # 0.10, tests that do not train for real compile at -O0 instead (``pytest_runtest_setup``).
    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_backend_optimization_level" not in flags:  # workers inherit the controller's
        flags = f"{flags} --xla_backend_optimization_level=1"
    # One LLVM module per program instead of parts compiled on parallel threads: each worker
    # already has a core to itself, and the split only repeats work (jaxlib 0.10, 8 files of
    # the suite on 2 workers, three rounds interleaved: 533 -> 508 CPU seconds; jaxlib 0.11:
    # a compile's CPU time within the noise).
    if "--xla_cpu_parallel_codegen_split_count" not in flags:
        flags = f"{flags} --xla_cpu_parallel_codegen_split_count=1"
    if "--xla_cpu_use_fusion_emitters" not in flags and JAXLIB_0_10:
        flags = f"{flags} --xla_cpu_use_fusion_emitters=false"
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ.pop("JAXCV_EXECUTION", None)
    config.addinivalue_line("markers", "optimized: the test runs its programs long enough (real training) that "
                                       "XLA's -O1 pays for its compile time; on jaxlib 0.10 the others compile at -O0")


_CREATED_DIRS = pytest.StashKey[list[str]]()


def _session_dir(config: pytest.Config, variable: str, prefix: str, replace: bool = False) -> None:
    """``$variable`` set to a fresh temporary directory that ``pytest_unconfigure`` removes (the
    embedded datasets alone are ~60 MB a session), unless it is set already and not ``replace``:
    the user's own, or the controller's, which a pytest-xdist worker inherits and leaves alone."""
    if variable in os.environ and not replace:
        return
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    config.stash.setdefault(_CREATED_DIRS, []).append(os.environ[variable])


def pytest_unconfigure(config):
    """The session's temporary directories removed (a worker's before the controller's)."""
    for path in config.stash.get(_CREATED_DIRS, []):
        shutil.rmtree(path)


SLOWEST_FILES = ("test_training_studies.py", "test_shapes_learning.py", "test_experiments.py",
                 "test_transfer_studies.py", "test_parallel.py", "test_real_data.py")
"""The test files that take longest, slowest first (a run on 2 workers, 2026-12-07 18:35 UTC: 155,
82, 76, 74, 64 and 61 s; every other file under 42 s, test_train.py since its streamed learning
test became test_shapes_learning.py's deep CNN)."""


def pytest_collection_modifyitems(items):
    """The slowest files first, then the rest in their order.  pytest-xdist hands a worker its
    next file while its current one still runs, in this order (``--no-loadscope-reorder``; by
    default it would put the files with the most tests first): a slow file handed out last
    would keep one worker busy while the other idles."""
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Most tests compile far more than they run: on jaxlib 0.10 those compile at -O0
    (``jax_disable_most_optimizations``: the whole suite at -O0 compiled in 160 s against 359 s),
    and the tests marked ``optimized``, which train for real, at the -O1 above (at -O0 they ran
    2-4x longer, and lenet_model1's gradient through its BatchNorms is NaN from its second step
    there, under jit only: an XLA:CPU miscompile; a jitted shapes_deep_cnn step gives another
    loss than eager or -O1 from its second step, 1.664 against 1.676, and NaN later in an
    epoch).  So a test whose numbers must be right trains ``optimized``; the -O0 tests check
    mechanics, and compare runs that both compile at -O0.  Set before the test's fixtures, so a
    module's shared trained model follows its marker; scripts run in processes of their own
    compile at -O1."""
    import jax

    jax.config.update("jax_disable_most_optimizations",
                      JAXLIB_0_10 and item.get_closest_marker("optimized") is None)


@functools.cache
def study(name: str) -> ModuleType:
    """``experiments/<name>.py`` imported as a module: ``study(name).run(argv)`` runs it in-process."""
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def run_study(data_dir):
    """``run_study(name, out, *argv)``: the study run in-process on the session's data dir into
    ``out``, without progress bars; its history and summary."""

    def run(name: str, out: Path, *argv: str) -> tuple[dict, str]:
        study(name).run(["--data-dir", data_dir, "--out", str(out), "--no-progress", *argv])
        return json.loads((out / "history.json").read_text()), (out / "summary.md").read_text()

    return run


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The session's data dir for the embedded datasets, shared by the xdist workers."""
    return os.environ["JAXCV_TEST_DATA_DIR"]


@pytest.fixture(scope="session")
def shapes_cifar(data_dir):
    from jaxcv.data import load_split

    return load_split("shapes/cifar", "train", data_dir), load_split("shapes/cifar", "test", data_dir)


def _splits(name: str, data_dir: str):
    from jaxcv.data import load_split

    return load_split(name, "train", data_dir), load_split(name, "test", data_dir)


@pytest.fixture(scope="session")
def shapes_easy(data_dir):
    return _splits("shapes/easy", data_dir)


@pytest.fixture(scope="session")
def shapes_hard(data_dir):
    return _splits("shapes/hard", data_dir)


@pytest.fixture(scope="session")
def shapes_triangles(data_dir):
    return _splits("shapes/triangles", data_dir)


@pytest.fixture(scope="session")
def shapes_denoise(data_dir):
    return _splits("shapes/denoise", data_dir)


def _idx_split(folder: Path, prefix: str) -> dict[str, np.ndarray]:
    """One split of MNIST's original IDX files in ``folder``, or skip."""
    from jaxcv.data.originals import read_idx

    images, labels = folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        pytest.skip(f"real MNIST ({prefix}) not found in {folder}")
    return {"image": read_idx(images)[..., None], "label": read_idx(labels).astype(np.int32)}


@pytest.fixture(scope="session")
def mnist_full():
    """The complete real MNIST (60,000 + 10,000 digits) from ../shared/data/mnist, or skip."""
    return _idx_split(MNIST, "train"), _idx_split(MNIST, "t10k")
