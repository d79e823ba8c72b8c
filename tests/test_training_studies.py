"""The training studies, run in-process on the embedded data for one short epoch (each
script's command line is checked in test_experiments.py)."""

import math

import pytest

from conftest import study
from jaxcv.errors import UsageError

pytestmark = pytest.mark.optimized  # they train for real: conftest.py

SMALL = ("--dataset", "shapes/cifar", "--test-size", "64", "--epochs", "1")


def _figures(out, *names):
    for name in names:
        assert (out / f"{name}.png").stat().st_size > 5_000, name


def test_overfitting_mnist(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("overfitting_mnist", tmp_path, *SMALL, "--seeds", "2", "--train-size", "128",
                                 "--batch-size", "64", "--wide-fc", "256")
    assert set(history) == {"mnist_cnn[dropout_rate=0.25]", "mnist_cnn[dropout_rate=0]", "no_dropout_fc256"}
    assert set(history["mnist_cnn[dropout_rate=0]"]) == {"0", "1"}
    assert "exact gap" in summary and "no_dropout_fc256" in summary
    _figures(tmp_path, "curves", "gap")


def test_batch_size_mnist(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("batch_size_mnist", tmp_path, *SMALL, "--seeds", "1", "--train-size", "128",
                                 "--batch-sizes", "32,128")
    assert set(history) == {"batch32", "batch128"}
    assert "| batch 32 |" in summary and "| batch 128 |" in summary
    _figures(tmp_path, "curves", "epoch_seconds", "accuracy")

    with pytest.raises(UsageError, match="--batch-sizes 256: 128 training examples make no batch of that size"):
        run_study("batch_size_mnist", tmp_path / "larger", *SMALL, "--train-size", "128", "--batch-sizes", "32,256")
    assert not (tmp_path / "larger" / "checkpoints").exists()  # batch 32 did not train first


def test_architecture_mnist(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("architecture_mnist", tmp_path, *SMALL, "--seeds", "1", "--train-size", "128",
                                 "--batch-size", "64")
    assert set(history) == {"base", "minus_1_conv", "plus_3_conv", "plus_fc1024"}
    assert "4.9 M" in summary and "report's params" in summary


def test_lenet_cifar(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("lenet_cifar", tmp_path, *SMALL, "--seeds", "1", "--train-size", "128",
                                 "--batch-size", "64")
    assert set(history) == {"lenet", "lenet_model1", "lenet_model2"}
    assert "| fc2 | 650 | 640 | +10 |" in summary and "| total | 390,410 | 390,400 | +10 |" in summary
    assert "final test accuracy" in summary and "Table 3" in summary
    assert "validation is the last 12 of the training split's 128 images (--val-fraction 0.1)" in summary


def test_callbacks_study(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("callbacks_study", tmp_path, "--dataset", "shapes/cifar", "--test-size", "64",
                                 "--epochs", "3", "--seeds", "1", "--train-size", "64", "--batch-size", "64",
                                 "--patience", "1", "--lr-patience", "1", "--dropout-rates", "0,0.3")
    assert {"none", "early_stopping", "reduce_lr", "both", "dropout[dropout_rate=0]",
            "dropout[dropout_rate=0.3]"} == set(history)
    assert len(history["none"]["0"]) == 3
    assert "Best: rate" in summary
    _figures(tmp_path, "curves", "dropout", "dropout_curves")


def test_hparam_search(shapes_cifar, run_study, tmp_path):
    _, summary = run_study("hparam_search", tmp_path, *SMALL, "--train-size", "64", "--trials", "3", "--vmap", "2")
    table = summary.split("| sampler |")[1]
    assert table.count("| random |") == 3 and table.count("| tpe |") == 3
    assert "**Best**" in summary
    _figures(tmp_path, "search")
    # --trials and --samplers say which runs to make, not what a run is: the search resumes
    _, summary = run_study("hparam_search", tmp_path, *SMALL, "--train-size", "64", "--trials", "2", "--vmap", "2",
                           "--samplers", "random")
    table = summary.split("| sampler |")[1]
    assert table.count("| random |") == 3 and "| tpe |" not in table


def test_hparam_search_draws_only_batch_sizes_its_training_set_fills():
    batch_sizes = study("hparam_search").batch_sizes
    assert batch_sizes(64) == [16, 32, 64] and batch_sizes(50_000) == [16, 32, 64, 128]
    with pytest.raises(UsageError, match="8 training images make no batch of the search's smallest, 16"):
        batch_sizes(8)


def test_an_interrupted_search_resumes_to_the_trials_of_an_uninterrupted_one(shapes_cifar, data_dir, tmp_path,
                                                                             monkeypatch):
    """Which points a search draws depends on how many trials it has finished, not on the
    process: interrupted in a group and rerun (the group trains again, from its checkpoints),
    it tells optuna the trials of a search never interrupted.  Training is replaced by a score
    computed from the point; TPE models the scores from its eleventh trial on."""
    import optuna

    hparam, groups = study("hparam_search"), []

    def score(study_, sampler, group, points, search, *data):
        groups.append(sampler)
        if len(groups) == interrupt_at:
            raise KeyboardInterrupt
        for trial, point in zip(group, points):
            search.tell(trial, point["dropout_rate"] - abs(math.log10(point["learning_rate"]) + 3))

    def trials(out):
        storage = f"sqlite:///{out}/optuna.db"
        return {name: [(t.params, t.value) for t in optuna.load_study(study_name=name, storage=storage)
                       .get_trials(states=(optuna.trial.TrialState.COMPLETE,))] for name in ("random", "tpe")}

    def search(out):
        hparam.run(["--data-dir", data_dir, "--out", str(out), *SMALL, "--train-size", "64", "--trials", "12",
                    "--vmap", "3"])

    monkeypatch.setattr(hparam, "train_group", score)
    interrupt_at = 0
    search(tmp_path / "whole")
    interrupt_at = len(groups) + 7  # the third group of tpe
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "resumed")
    search(tmp_path / "resumed")
    whole, resumed = trials(tmp_path / "whole"), trials(tmp_path / "resumed")
    assert len(whole["tpe"]) == 12 and whole == resumed


def test_augmentation_cifar(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("augmentation_cifar", tmp_path, *SMALL, "--train-size", "128", "--seeds", "1",
                                 "--grid-transforms", "zoom,horizontal_flip")
    grid = {"grid/none", "grid/zoom", "grid/horizontal_flip", "grid/zoom+horizontal_flip"}
    assert set(history) == {"none", "keras_cifar10_cnn"} | grid
    assert "keras_cifar10_cnn" in summary and "| rank | zoom | horizontal_flip |" in summary
    assert "main effect" in summary and "epoch time" in summary
    for figure in ("curves", "grid_curves", "augmented_examples"):
        assert (tmp_path / f"{figure}.png").stat().st_size > 10_000
