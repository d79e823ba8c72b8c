"""Inspection speed: occlusion maps, saliency and Grad-CAM against a forward pass over as many
images, and t-SNE of 2,500 points.

The peer of each inspection call is the plain forward pass (softmax probabilities) of
``mnist_cnn`` over the same number of images, compiled the same way (one call, batches of
``--batch-size`` inside it): occlusion evaluates every occluded copy of every image, so it
should cost about one forward pass over ``images × positions`` images, and a gradient about
a forward and a backward pass.  Synthetic uint8 images and random weights (the cost does not
depend on either).  Each call is timed once cold (compilation included) and then ``--repeats``
times, blocked on its result; the median is reported.

t-SNE runs on 2,500 points in 10 Gaussian clusters of 128 dimensions (the width of
``mnist_cnn``'s penultimate layer): scikit-learn's Barnes-Hut, and openTSNE where it is
installed, each with the 5-NN accuracy of its embedding as a check that both did the work.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxcv import inspection  # noqa: E402
from jaxcv.bench import device_info, load, median_seconds, synthetic  # noqa: E402
from jaxcv.errors import UsageError, one_line_usage_errors  # noqa: E402
from jaxcv.experiment import output_file, positive_int  # noqa: E402
from jaxcv.inspection.batching import map_batches  # noqa: E402
from jaxcv.inspection.layers import forward  # noqa: E402
from jaxcv.models import get_model  # noqa: E402
from jaxcv.viz import markdown_table  # noqa: E402


def time_tsne(points: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """Seconds and 5-NN accuracy of a 2-D t-SNE of ``points`` by each library present."""
    runs: dict[str, Callable[[], np.ndarray]] = {"scikit-learn": lambda: inspection.tsne(points)}
    try:
        import openTSNE
    except ImportError:
        print("openTSNE not installed: skipped (pip install openTSNE)")
    else:
        runs[f"openTSNE {openTSNE.__version__}"] = lambda: np.asarray(
            openTSNE.TSNE(perplexity=30, n_jobs=-1, random_state=0).fit(points))
    records = []
    for name, run in runs.items():
        start = time.perf_counter()
        embedding = run()
        seconds = time.perf_counter() - start
        records.append({"what": f"t-SNE, {name}", "points": len(points), "seconds": seconds,
                        "knn5_accuracy": inspection.knn_accuracy(embedding, labels), "load": load()})
        print(records[-1], flush=True)
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=positive_int, default=64, help="images to occlude (default: 64)")
    p.add_argument("--patch", type=positive_int, default=6)
    p.add_argument("--stride", type=positive_int, default=2)
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per batch inside a call")
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--tsne-points", type=int, default=2500, help="0 skips t-SNE (default: 2500)")
    p.add_argument("--json", type=output_file, help="where to write the records (default: benchmarks/results/)")
    args = p.parse_args()
    try:
        inspection.check_patch((args.images, 28, 28, 1), args.patch, args.stride)  # mnist_cnn's images
    except UsageError as e:
        p.error(str(e))
    info = device_info()
    print(f"# {info['host']} ({info['cpu']}), jax {info['jax']}, devices {info['devices']}, load {load()}")

    model = get_model("mnist_cnn")
    images = synthetic((28, 28, 1), args.images)["image"]
    variables = model.init(jax.random.key(0), images[:1].astype(np.float32))
    positions = len(inspection.positions(28, args.patch, args.stride)) ** 2
    batch = args.batch_size

    @jax.jit
    def forward_probs(variables: Any, x: np.ndarray) -> jax.Array:
        return map_batches(lambda b: jax.nn.softmax(forward(model, variables, b)[0]), x, batch)

    occluded_count = np.repeat(images, positions, axis=0)  # as many images as occlusion classifies
    calls = {
        f"occlusion, {args.images} images × {positions} positions": (
            lambda: inspection.occlusion(model, variables, images, patch=args.patch, stride=args.stride,
                                         batch_size=batch), len(occluded_count)),
        f"forward, {len(occluded_count)} images": (lambda: forward_probs(variables, occluded_count), None),
        f"saliency, {args.images} images": (
            lambda: inspection.saliency(model, variables, images, batch_size=batch), args.images),
        f"Grad-CAM conv3, {args.images} images": (
            lambda: inspection.grad_cam(model, variables, images, layer="conv3", batch_size=batch), args.images),
        f"forward, {args.images} images": (lambda: forward_probs(variables, images), None),
    }
    records = []
    for what, (fn, _) in calls.items():
        records.append({"what": what, **median_seconds(fn, args.repeats), "load": load()})
        print(records[-1], flush=True)
    forward_seconds = {len(occluded_count): records[1]["seconds"], args.images: records[4]["seconds"]}
    for record, (_, peer) in zip(records, calls.values()):
        record["over_forward"] = record["seconds"] / forward_seconds[peer] if peer else None

    if args.tsne_points:
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 10, args.tsne_points)
        points = (rng.normal(size=(args.tsne_points, 128)) + 3 * rng.normal(size=(10, 128))[labels]).astype(np.float32)
        records += time_tsne(points, labels)

    rows = [(r["what"], f"{r['seconds']:.3f}", f"{r['over_forward']:.2f}×" if r.get("over_forward") else "",
             f"{r['first_call_seconds']:.2f}" if "first_call_seconds" in r else "",
             f"{r['knn5_accuracy']:.3f}" if "knn5_accuracy" in r else "", f"{r['load']:.1f}") for r in records]
    print(f"\nbatch {batch} inside each call, median of {args.repeats} warm calls\n")
    print(markdown_table(["what", "seconds", "÷ forward over as many images", "first call s (compiling)",
                          "5-NN accuracy", "load"], rows))
    path = args.json or Path(__file__).parent / "results" / f"{info['host']}-{datetime.date.today()}-inspection.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                "records": records}, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    with one_line_usage_errors():
        main()
