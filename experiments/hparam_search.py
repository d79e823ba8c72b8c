"""Hyper-parameter search (report 002): optuna over optimizer, learning rate, weight decay,
momentum, dropout, batch size (16 to 128, those the training set fills) and BatchNorm, with the
random and the TPE sampler (--batch-size is not used: the search draws it).

Report 002 ran 30 trials and found Adam-family optimizers with dropout 0.5 and BatchNorm best.
Here each sampler runs --trials trials of the Keras CIFAR CNN.  Trials go --vmap at a time:
the first of a group draws every parameter, the others share its optimizer, batch size and
BatchNorm and draw their own learning rate, weight decay, momentum and dropout, and the group
trains as one vmapped call (--vmap 1: every trial draws everything, as the report did).  A trial
scores its best validation accuracy; one whose loss diverges is pruned.  The search is stored
in <out>/optuna.db and every group is checkpointed: rerun the command to resume it (the samplers
are seeded per trial, so a resumed search draws the points of one never interrupted).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
from typing import Sequence

import optuna

from jaxcv import experiment
from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.train import OPTIMIZERS, FitResult, make_optimizer
from jaxcv.viz import markdown_table, plot_lines

STUDY = "hparam_search"
SAMPLERS = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}
STRUCTURE = ("optimizer", "batch_size", "batchnorm")  # shared by a vmapped group
MOMENTUM = ("sgd", "rmsprop")
BATCH_SIZES = (16, 32, 64, 128)


def batch_sizes(examples: int) -> list[int]:
    """The searched batch sizes that ``examples`` training images fill at least once: a larger
    one would fail its trial after the others trained."""
    if not (fitting := [b for b in BATCH_SIZES if b <= examples]):
        raise UsageError(f"{examples} training images make no batch of the search's smallest, {BATCH_SIZES[0]}; "
                         f"raise --train-size")
    return fitting


def suggest(trial: optuna.Trial, batch_size_choices: Sequence[int]) -> dict:
    """One point of the search space (momentum only for the optimizers that use it)."""
    params = {"optimizer": trial.suggest_categorical("optimizer", OPTIMIZERS),
              "batch_size": trial.suggest_categorical("batch_size", list(batch_size_choices)),
              "batchnorm": trial.suggest_categorical("batchnorm", [False, True]),
              "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True),
              "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
              "dropout_rate": trial.suggest_float("dropout_rate", 0.0, 0.45)}
    if params["optimizer"] in MOMENTUM:
        params["momentum"] = trial.suggest_float("momentum", 0.0, 0.99)
    return params


def samplers(text: str) -> list[str]:
    names = text.split(",")
    if not names or any(n not in SAMPLERS for n in names):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SAMPLERS)}; got {text!r}")
    return names


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="cifar10", epochs=10, batch_size=64, seeds=1)
    p.add_control("--trials", type=experiment.positive_int, default=30, help="trials per sampler (may grow between reruns)")
    p.add_control("--samplers", type=samplers, default=list(SAMPLERS), help="comma-separated")
    p.add_argument("--vmap", type=experiment.positive_int, default=5,
                   help="trials trained together, sharing optimizer, batch size and BatchNorm")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()
    choices = batch_sizes(len(train["image"]))
    storage = f"sqlite:///{(study.out / 'optuna.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    trials = {}
    for name in args.samplers:
        search = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
        for stale in search.get_trials(states=(optuna.trial.TrialState.RUNNING,)):  # an interrupted group
            search.enqueue_trial(stale.params)
            search.tell(stale.number, state=optuna.trial.TrialState.FAIL)
        while (done := len(search.get_trials(states=(optuna.trial.TrialState.COMPLETE,
                                                      optuna.trial.TrialState.PRUNED)))) < args.trials:
            group, points = [], []
            for i in range(min(args.vmap, args.trials - done)):
                if i and not search.get_trials(states=(optuna.trial.TrialState.WAITING,)):
                    search.enqueue_trial({k: points[0][k] for k in STRUCTURE})
                # seeded by the trial's place in the search, not by the process: a resumed search
                # draws what one never interrupted would have
                search.sampler = SAMPLERS[name](seed=done + i)
                group.append(search.ask())
                points.append(suggest(group[-1], choices))
            train_group(study, name, group, points, search, train, test, num_classes)
        trials[name] = search.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    summarise(study, trials)


def train_group(study: experiment.Study, sampler: str, group: list[optuna.Trial], points: list[dict],
                search: optuna.Study, train, test, num_classes: int) -> None:
    """Train a group of trials sharing their structure as one vmapped sweep; tell optuna."""
    first = points[0]
    momentum = first["optimizer"] in MOMENTUM
    continuous = ["learning_rate", "weight_decay", "dropout_rate", *(["momentum"] if momentum else [])]
    key = hashlib.sha1(json.dumps([sampler, points], sort_keys=True).encode()).hexdigest()[:10]
    results = study.sweep(f"trials_{key}", get_model("cifar_cnn", batchnorm=first["batchnorm"], num_classes=num_classes),
                          train, test, {k: [pt[k] for pt in points] for k in continuous},
                          batch_size=first["batch_size"], may_diverge=True,  # a diverged trial is pruned
                          optimizer=make_optimizer(first["optimizer"], 1e-3, momentum=0.9 if momentum else 0.0))
    for trial, runs in zip(group, results.values()):
        if any(diverged(r) for r in runs):
            trial.set_user_attr("diverged", True)
            search.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        accuracy = [[e["val_accuracy"] for e in r.history] for r in runs]
        best = statistics.fmean(max(a) for a in accuracy)
        trial.set_user_attr("best_epoch", statistics.median(a.index(max(a)) + 1 for a in accuracy))
        search.tell(trial, best)


def diverged(result: FitResult) -> bool:
    """Whether a run's loss or validation accuracy stopped being a number."""
    return not all(math.isfinite(e["train_loss"]) and math.isfinite(e["val_accuracy"]) for e in result.history)


def summarise(study: experiment.Study, trials: dict[str, list]) -> None:
    """The trial table (best first), the best configuration and the search plot."""
    args = study.args
    columns = ["optimizer", "learning_rate", "weight_decay", "momentum", "dropout_rate", "batch_size", "batchnorm"]
    rows, series = [], {}
    for sampler, ts in trials.items():
        scores = [t.value if t.value is not None else 0.0 for t in ts]
        series[f"{sampler}: trial"] = (range(1, len(ts) + 1), scores)
        series[f"{sampler}: best so far"] = (range(1, len(ts) + 1), [max(scores[: i + 1]) for i in range(len(ts))])
        rows += [[sampler, t.number, *(_cell(t.params.get(c, "")) for c in columns),
                  t.user_attrs.get("best_epoch", ""), "diverged" if t.value is None else f"{t.value:.4f}"]
                 for t in ts]
    rows.sort(key=lambda r: r[-1] if r[-1] != "diverged" else "", reverse=True)
    table = markdown_table(["sampler", "trial", *columns, "best epoch", "best val acc"], rows)
    plot_lines(series, study.figure("search"), xlabel="trial", ylabel="best validation accuracy",
               title=f"hyper-parameter search on {args.dataset}")
    best = rows[0]
    text = (f"# Hyper-parameter search on {args.dataset}\n\n`cifar_cnn`, {args.epochs} epochs per trial, "
            f"{args.trials} trials per sampler, groups of {args.vmap} trained vmapped.\n\n**Best**: {best[0]} "
            f"trial {best[1]}: " + ", ".join(f"{c} {v}" for c, v in zip(columns, best[2:])) +
            f" → {best[-1]}\n\n![search](search.png)\n\n{table}\n")
    print(text)
    study.write_summary(text)


def _cell(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    experiment.main(run)
