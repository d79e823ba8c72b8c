#!/usr/bin/env bash
# The GPU check, in one call: on a GPU machine (Python 3.12, jax 0.11 with CUDA; no TensorFlow,
# TFDS, Grain or array_record; no network) it runs the main job on the embedded set, the epoch-time
# benchmark (GPU and CPU columns, speedup, fraction of peak) and the tests that can use a GPU, and
# writes everything into one folder:
#
#   benchmarks/gpu_check.sh [RESULTS]   # default: $OUT if set, else benchmarks/results/gpu-check-<host>-<time>
#   QUICK=1 BUDGET="3000 3000 3000" benchmarks/gpu_check.sh   # a smoke run of the same steps (tiny
#                                       # sizes, generous time limits), e.g. on a CPU
#
# What the machine lacks travels beside the project as wheels in .whl/ (ignored by git; the
# README's "The real datasets, and GPUs" lists them): they are installed into a temporary
# folder and put on PYTHONPATH with the project.  Written into RESULTS (at most 8 files):
# gpu_check.log (everything printed, the environment first), study_summary.md and
# study_history.json (the main job), epoch_times.{json,md,png}, pytest.log.  Exit status: the
# number of steps that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-${OUT:-benchmarks/results/gpu-check-$(hostname)-$(date +%Y%m%d-%H%M)}}
PY=${PYTHON:-python3}
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/gpu_check.log") 2>&1
step() { echo; echo "== $* ($(date +%T))"; }

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
if compgen -G ".whl/*.whl" > /dev/null; then
  step "installing $(ls .whl/*.whl | wc -l) carried wheels into $SCRATCH/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SCRATCH/site" .whl/*.whl || exit 1
fi
# the project and the wheels; no downloads; each process takes GPU memory as it needs it (the
# tests start studies in processes of their own); fresh data and compilation caches
export PYTHONPATH="$PWD:$SCRATCH/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 JAXCV_OFFLINE=1 \
  XLA_PYTHON_CLIENT_PREALLOCATE=false TFDS_DATA_DIR="$SCRATCH/tfds" JAX_COMPILATION_CACHE_DIR="$SCRATCH/xla"

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"
"$PY" - <<'EOF'
import importlib.util, sys
import jax, jaxlib, flax, numpy, optax
print(sys.version.split()[0], "| jax", jax.__version__, "| jaxlib", jaxlib.__version__, "| flax", flax.__version__,
      "| optax", optax.__version__, "| numpy", numpy.__version__)
print("devices:", jax.devices(), "| default backend:", jax.default_backend())
print("tensorflow installed:", importlib.util.find_spec("tensorflow") is not None)
EOF

if [[ -n ${QUICK:-} ]]; then
  STUDY=(--epochs 1 --seeds 1 --train-size 512); BENCH=(--quick); TESTS=(tests/test_real_data.py tests/test_models.py)
else
  STUDY=(--epochs 5 --seeds 2); BENCH=(--examples 4096 --repeats 3)
  TESTS=(tests/test_data.py tests/test_real_data.py tests/test_train.py tests/test_many.py tests/test_models.py
         tests/test_augment.py)
fi
# seconds each step may take (SIGINT then: pytest still reports what ran), so that the whole call
# fits the device machines' 10 minutes a command
BUDGET=(${BUDGET:-150 180 210})
failed=0

step "main job: experiments/batchnorm_cifar.py --dataset shapes/cifar ${STUDY[*]}"
if timeout -s INT "${BUDGET[0]}" "$PY" experiments/batchnorm_cifar.py --dataset shapes/cifar "${STUDY[@]}" \
    --no-progress --out "$SCRATCH/study"; then
  cp "$SCRATCH/study/summary.md" "$RESULTS/study_summary.md"
  cp "$SCRATCH/study/history.json" "$RESULTS/study_history.json"
else
  failed=$((failed + 1))
fi

step "epoch times: benchmarks/epoch_times.py ${BENCH[*]}"
timeout -s INT "${BUDGET[1]}" "$PY" benchmarks/epoch_times.py "${BENCH[@]}" --json "$RESULTS/epoch_times.json" \
  || failed=$((failed + 1))

step "tests that can use a GPU: ${TESTS[*]}"
timeout -s INT "${BUDGET[2]}" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" > "$RESULTS/pytest.log" 2>&1 \
  || failed=$((failed + 1))
tail -n 15 "$RESULTS/pytest.log"

step "done: $failed step(s) failed; results in $RESULTS"
exit $failed
