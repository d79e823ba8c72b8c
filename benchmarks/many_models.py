"""K models in one vmapped call (``fit_many``) against K calls of ``fit``, seconds per epoch.

Both train the same K seeds on the same synthetic data through the real training loop
(whole epoch as one compiled scan, metrics fetched every epoch).  Reports the median epoch
time of the K-model call, the sum over the K single-model runs of their median epoch times,
and the compile time of each way apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxcv.bench import WORKLOADS, device_info, synthetic  # noqa: E402
from jaxcv.errors import one_line_usage_errors  # noqa: E402
from jaxcv.experiment import positive_int  # noqa: E402
from jaxcv.models import get_model  # noqa: E402
from jaxcv.train import fit, fit_many, make_optimizer  # noqa: E402
from jaxcv.viz import markdown_table  # noqa: E402

SHAPES = {name: WORKLOADS[name].shape for name in ("mnist_cnn", "keras_mnist_cnn", "cifar_cnn", "cifar_cnn_bn")}


def median_epoch(history: list[dict[str, float]]) -> float:
    """Median epoch seconds after the first epoch (which warms caches)."""
    return statistics.median(r["epoch_seconds"] for r in history[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="mnist_cnn,cifar_cnn", help=f"comma-separated, from {', '.join(SHAPES)}")
    p.add_argument("--k", type=positive_int, default=8, help="models (seeds) per call (default: 8)")
    p.add_argument("--examples", type=positive_int, default=4096, help="examples per epoch (default: 4096)")
    p.add_argument("--epochs", type=positive_int, default=3, help="epochs per run; the first is not timed (default: 3)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    args = p.parse_args()
    models = args.models.split(",")
    if unknown := [m for m in models if m not in SHAPES]:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is not timed)")
    if args.examples < args.batch_size:
        p.error(f"--examples {args.examples} make no batch of --batch-size {args.batch_size}")
    info = device_info()
    print(f"# {info['host']} ({info['cpu']}), jax {info['jax']}, devices {info['devices']}")

    rows = []
    for name in models:
        data = synthetic(SHAPES[name], args.examples)
        common = dict(optimizer=make_optimizer("adam", 1e-3), epochs=args.epochs, batch_size=args.batch_size,
                      progress=False)
        together = fit_many(get_model(name), data, None, seeds=range(args.k), **common)
        apart = [fit(get_model(name), data, None, seed=seed, **common) for seed in range(args.k)]
        one_call, k_calls = median_epoch(together[0].history), sum(median_epoch(r.history) for r in apart)
        rows.append((name, args.k, f"{one_call:.2f}", f"{k_calls:.2f}", f"{k_calls / one_call:.2f}×",
                     f"{together[0].compile_seconds:.1f}", f"{sum(r.compile_seconds for r in apart):.1f}"))
        print(rows[-1], flush=True)
    print(f"\n{args.examples} examples per epoch, batch {args.batch_size}, median of {args.epochs - 1} epoch(s)\n")
    print(markdown_table(["model", "K", "s / epoch, K vmapped in one call", "s / epoch, K calls (sum)",
                          "speedup", "compile s, one call", "compile s, K calls"], rows))


if __name__ == "__main__":
    with one_line_usage_errors():
        main()
