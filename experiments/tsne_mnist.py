"""t-SNE of learned features (report 001, Task 3): the first 2,500 MNIST test digits embedded in
2-D from the penultimate layer of a trained mnist_cnn, beside the embedding of their raw pixels.

The summary gives each embedding's leave-one-out 5-nearest-neighbour accuracy (how well the
classes separate in 2-D) and the model's test accuracy.  --from inspects a model an earlier
study trained (e.g. runs/mnist_baseline/mnist); without it, the model is trained here first.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from jaxcv import experiment, inspection, runs
from jaxcv.viz import markdown_table
from jaxcv.viz.inspection import plot_embedding

STUDY = "tsne_mnist"


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="mnist", epochs=3, batch_size=128, seeds=1, optimizer="adam",
                          lr=1e-3)
    runs.add_source_options(p)
    p.add_control("--points", type=experiment.positive_int, default=2500, help="the first N test images")
    p.add_control("--layer", default=None, help="feature to embed (default: the model's last, its penultimate layer)")
    p.add_control("--perplexity", type=experiment.positive_float, default=30.0, help="t-SNE perplexity")
    p.add_control("--k", type=experiment.positive_int, default=5, help="neighbours of the k-NN accuracy")
    study = experiment.Study(STUDY, p, argv)
    args = study.args

    def check(model, test):
        inspection.check_layers(model, test["image"], feature_name=args.layer)
        inspection.check_embedding(min(args.points, len(test["label"])), perplexity=args.perplexity, k=args.k)

    dataset, _, test, model, trained = runs.inspected_run(study, check)

    test_accuracy = float((np.asarray(inspection.probabilities(model, trained.variables, test["image"])).argmax(-1)
                           == test["label"]).mean())
    images, labels = test["image"][: args.points], test["label"][: args.points]
    spaces = {f"features ({args.layer or 'penultimate'})": inspection.features(model, trained.variables, images,
                                                                               args.layer),
              "raw pixels": images.reshape(len(images), -1).astype(np.float32) / 255}
    results = {"model": type(model).__name__, "run": str(trained.run_dir), "variant": trained.variant,
               "seed": trained.seed, "epoch": trained.epoch, "test_accuracy": test_accuracy,
               "test_images": len(test["label"]), "points": len(images), "embeddings": {}}
    rows = []
    for (name, points), figure in zip(spaces.items(), ("tsne_features", "tsne_pixels")):
        start = time.perf_counter()
        embedding = inspection.tsne(points, perplexity=args.perplexity)
        seconds = time.perf_counter() - start
        accuracy = inspection.knn_accuracy(embedding, labels, args.k)
        results["embeddings"][name] = {"dimensions": int(points.shape[1]), f"knn{args.k}_accuracy": accuracy,
                                       "tsne_seconds": seconds, "figure": f"{figure}.png"}
        rows.append((name, f"{points.shape[1]:,}", f"{accuracy:.4f}", f"{seconds:.1f}"))
        plot_embedding(embedding, labels, study.figure(figure), images=images,
                       title=f"t-SNE of {len(images):,} {dataset} test images: {name}")
    table = markdown_table(["embedded", "dimensions", f"{args.k}-NN accuracy (2-D)", "t-SNE s"], rows)
    print(table)
    study.write_results("results", results)
    study.write_summary(
        f"# t-SNE of {results['model']}'s features\n\nThe first {len(images):,} test images, t-SNE (perplexity "
        f"{args.perplexity:g}) of the model's features and of the raw pixels; leave-one-out {args.k}-NN accuracy "
        f"of each 2-D embedding.  Model: variant `{trained.variant}` seed {trained.seed} of `{trained.run_dir}` "
        f"after epoch {trained.epoch}, test accuracy {test_accuracy:.4f} on {len(test['label']):,} images.\n\n"
        f"{table}\n\n![features](tsne_features.png)\n\n![pixels](tsne_pixels.png)\n")


if __name__ == "__main__":
    experiment.main(run)
