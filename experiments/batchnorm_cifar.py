"""BatchNorm on CIFAR-10 (reports 000, 001): the Keras CIFAR CNN with and without BatchNorm.

Both variants train from the same seeds; the study writes their curves (mean ± std over
seeds), final test accuracy, epochs to reach a target accuracy and seconds per epoch.
"""

from __future__ import annotations

import statistics
from typing import Sequence

from jaxcv import experiment
from jaxcv.models import get_model
from jaxcv.train import make_optimizer
from jaxcv.viz import epoch_seconds, markdown_table, over_seeds, plot_runs

STUDY = "batchnorm_cifar"
VARIANTS = {"without_bn": False, "with_bn": True}


def epochs_to(records: list[dict[str, float]], target: float) -> int | None:
    """First epoch whose validation accuracy reaches ``target``."""
    return next((r["epoch"] for r in records if r["val_accuracy"] >= target), None)


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="cifar10", epochs=20, batch_size=128, seeds=3,
                          optimizer="adam", lr=1e-3)
    p.add_control("--target", type=experiment.positive_float, default=None,
                  help="accuracy to count epochs to; without it, 90%% of the lower final mean accuracy")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()

    optimizer = make_optimizer(args.optimizer, args.lr)
    results = {variant: study.run(variant, get_model("cifar_cnn", batchnorm=bn, num_classes=num_classes),
                                  train, test, optimizer=optimizer)
               for variant, bn in VARIANTS.items()}
    plot_runs(results, study.figure("curves"), title=f"cifar_cnn on {args.dataset}: with and without BatchNorm")

    ok = {v: [r for r in rs if not r.failed] for v, rs in results.items()}  # failed seeds: marked, not counted
    finals = {v: [r.history[-1]["val_accuracy"] for r in rs] for v, rs in ok.items() if rs}
    target = args.target or 0.9 * min((statistics.fmean(f) for f in finals.values()), default=1.0)
    rows = []
    for variant, rs in results.items():
        reached = [epochs_to(r.history, target) for r in ok[variant]]
        hit = [e for e in reached if e is not None]
        rows.append((
            variant, over_seeds(rs, lambda r: r.history[-1]["val_accuracy"]),
            f"{statistics.fmean(hit):.1f} ({len(hit)}/{len(rs)} seeds)" if hit else "not reached",
            f"{epoch_seconds(rs):.2f}", f"{statistics.fmean(r.compile_seconds for r in rs):.1f}",
        ))
    table = markdown_table(["variant", "final test accuracy", f"epochs to {target:.3f}",
                            "s / epoch / model", "compile s"], rows)
    print(table)
    study.write_summary(f"# BatchNorm on {args.dataset}\n\n`cifar_cnn`, {args.optimizer} lr {args.lr}, "
                        f"batch {args.batch_size}, {args.epochs} epochs, {args.seeds} seed(s) "
                        f"(mean ± std).\n\n{table}\n\n![curves](curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
