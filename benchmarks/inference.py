"""Inference speed against batches per compiled call: ``predict`` (mnist_cnn, cifar_cnn) and
``transfer.extract_features`` (vgg16) over the same images, ``--per-call`` batches per call.

XLA:CPU (jax 0.10) maps a fresh temporary buffer for every call of a program, and the kernel
zeroes its pages as they are first touched, so a call per batch pays for the pages every batch;
a loop over batches inside one call pays once (``jaxcv.train.evaluation.BATCHES_PER_CALL``).
Each setting is timed once cold (compiling) and then ``--repeats`` times, blocked on its result;
the median is reported, with the process's minor page faults in one more warm call.  Synthetic uint8
images and random weights (the cost does not depend on either).
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxcv.bench import device_info, load, median_seconds, synthetic, timed  # noqa: E402
from jaxcv.errors import one_line_usage_errors  # noqa: E402
from jaxcv.experiment import positive_int, positive_ints  # noqa: E402
from jaxcv.models import get_model  # noqa: E402
from jaxcv.train import create_state, make_optimizer, predict  # noqa: E402
from jaxcv.train.losses import to_float  # noqa: E402
from jaxcv.transfer import extract_features  # noqa: E402
from jaxcv.viz import markdown_table  # noqa: E402


def page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=positive_int, default=10240, help="images to predict (default: 10240)")
    p.add_argument("--feature-images", type=positive_int, default=1024,
                   help="64x64 images through vgg16's features (default: 1024)")
    p.add_argument("--per-call", type=positive_ints, default=(1, 8),
                   help="batches per compiled call to compare (default: 1,8)")
    p.add_argument("--repeats", type=positive_int, default=3)
    args = p.parse_args()
    info = device_info()
    print(f"# {info['host']} ({info['cpu']}), jax {info['jax']}, devices {info['devices']}, load {load()}")

    calls = {}
    for name, shape in (("mnist_cnn", (28, 28, 1)), ("cifar_cnn", (32, 32, 3))):
        images = synthetic(shape, args.images)["image"]
        state = create_state(get_model(name), make_optimizer("adam", 1e-3), to_float(images[:1]), jax.random.key(0))
        calls[f"predict {name}, {args.images} images, batch 256"] = (
            lambda k, state=state, images=images: predict(state, images, batches_per_call=k))
    vgg = get_model("vgg16", num_classes=10)
    images = synthetic((64, 64, 3), args.feature_images)["image"]
    variables = jax.jit(vgg.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    calls[f"vgg16 features, {args.feature_images} images 64x64, batch 64"] = (
        lambda k: extract_features(vgg, variables, images, batches_per_call=k))

    rows = []
    for what, fn in calls.items():
        for k in args.per_call:
            record = median_seconds(lambda: fn(k), args.repeats)
            before = page_faults()
            timed(fn, k)  # one more warm call, to count its page faults alone
            faults = page_faults() - before
            rows.append((what, k, f"{record['seconds']:.2f}", ", ".join(f"{s:.2f}" for s in record["seconds_all"]),
                         f"{faults:,}", f"{load():.1f}"))
            print(rows[-1], flush=True)
    print(f"\nmedian of {args.repeats} warm calls\n")
    print(markdown_table(["what", "batches per call", "seconds", "each warm call", "page faults, one warm call",
                          "load"], rows))


if __name__ == "__main__":
    with one_line_usage_errors():
        main()
