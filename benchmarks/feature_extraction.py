"""Feature extraction: a head epoch on cached features against a head epoch that runs the
frozen backbone (issue 14's bar: >= 20x faster).

Both train the same new head (``--top`` hidden layers, then the classes) of a backbone
through the real training loop (``fit``: a whole epoch as one compiled scan, metrics fetched
every epoch): once on the backbone's features computed beforehand (``extract_features``),
once on the images with every other layer frozen (``warm_start(..., trainable="head")``:
zero updates, the backbone's forward pass each step).  Reports median seconds per epoch
after the first, compile times apart, and the one-off extraction time.  Random weights
and images: the cost does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxcv.bench import device_info, synthetic  # noqa: E402
from jaxcv.errors import one_line_usage_errors  # noqa: E402
from jaxcv.experiment import positive_int, positive_ints  # noqa: E402
from jaxcv.models import get_model  # noqa: E402
from jaxcv.train import fit, make_optimizer  # noqa: E402
from jaxcv.transfer import extract_features, head_of, warm_start  # noqa: E402
from jaxcv.viz import markdown_table  # noqa: E402


def median_epoch(history: list[dict[str, float]]) -> float:
    """Median epoch seconds after the first epoch (which warms caches)."""
    return statistics.median(r["epoch_seconds"] for r in history[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="vgg16", help="comma-separated backbones (default: vgg16)")
    p.add_argument("--size", type=positive_int, default=32, help="image side in pixels (default: 32)")
    p.add_argument("--examples", type=positive_int, default=500, help="training images (default: 500)")
    p.add_argument("--epochs", type=positive_int, default=4, help="epochs per run; the first is not timed (default: 4)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--top", type=positive_ints, default=(256,), help="hidden layers of the head, comma-separated "
                                                                      "(default: 256)")
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is not timed)")
    if args.examples < args.batch_size:
        p.error(f"--examples {args.examples} make no batch of --batch-size {args.batch_size}")
    info = device_info()
    print(f"# {info['host']} ({info['cpu']}), jax {info['jax']}, devices {info['devices']}")

    rows = []
    data = synthetic((args.size, args.size, 3), args.examples)
    for name in args.models.split(","):
        model = get_model(name, num_classes=10, top=args.top)
        sample = jnp.zeros((1, args.size, args.size, 3))
        variables = jax.jit(lambda x: model.init(jax.random.key(0), x))(sample)  # noqa: B023
        common = dict(optimizer=make_optimizer("adam", 1e-3), epochs=args.epochs, batch_size=args.batch_size,
                      progress=False)
        extract_features(model, variables, data["image"][:args.batch_size]).block_until_ready()  # compile
        start = time.perf_counter()
        features = extract_features(model, variables, data["image"]).block_until_ready()
        extraction = time.perf_counter() - start
        cached = fit(head_of(model), {**data, "image": features}, None, **common)
        frozen = fit(model, data, None, warm_start=warm_start(variables, sample, trainable="head"), **common)
        head_s, frozen_s = median_epoch(cached.history), median_epoch(frozen.history)
        rows.append((name, f"{head_s:.4f}", f"{frozen_s:.2f}", f"{frozen_s / head_s:.0f}×", f"{extraction:.2f}",
                     f"{cached.compile_seconds:.1f}", f"{frozen.compile_seconds:.1f}"))
        print(rows[-1], flush=True)
    print(f"\n{args.examples} images of {args.size} px, batch {args.batch_size}, head {list(args.top)}, "
          f"median of {args.epochs - 1} epoch(s)\n")
    print(markdown_table(["backbone", "s / epoch, head on cached features", "s / epoch, head through the frozen "
                          "backbone", "speedup", "extraction s (once)", "compile s, cached", "compile s, frozen"], rows))


if __name__ == "__main__":
    with one_line_usage_errors():
        main()
