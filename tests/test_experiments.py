"""What every study shares, as a user meets it: its outputs, resuming, TensorBoard logs, errors
and its command line.  Studies run in-process (``run(argv)``); each script's command-line
contract is checked once in a process of its own."""

import json
import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import flax.linen as nn
import pytest
from tensorboardX.proto.event_pb2 import Event

from conftest import ROOT, study
from jaxcv import experiment
from jaxcv.errors import UsageError
from jaxcv.train import make_optimizer

SYNTHESIS = ("activation_maximization", "deep_dream", "neural_style")  # no dataset: tests/test_synthesis_studies.py
SCRIPTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem not in SYNTHESIS)
SMALL = ("--dataset", "shapes/cifar", "--train-size", "128", "--test-size", "64", "--batch-size", "64")


def _scalars(folder):
    """The TensorBoard scalars in ``folder``'s event files: ``{tag: [(step, value), ...]}``.
    An event file is a sequence of records: length (8 bytes), its CRC (4), an ``Event``, its CRC (4)."""
    scalars = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        raw, at = path.read_bytes(), 0
        while at < len(raw):
            (length,) = struct.unpack("<Q", raw[at:at + 8])
            event = Event.FromString(raw[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.mark.optimized
def test_batchnorm_cifar_writes_resumes_and_logs(shapes_cifar, run_study, tmp_path, capsys):
    out = tmp_path / "bn"
    history, summary = run_study("batchnorm_cifar", out, *SMALL, "--epochs", "1", "--seeds", "2")
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "shapes/cifar" and config["lr"] == 1e-3 and "epochs" not in config
    assert set(history) == {"without_bn", "with_bn"} and set(history["with_bn"]) == {"0", "1"}
    for record in history["with_bn"]["1"]:
        assert {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds",
                "learning_rate", "lr_scale"} <= set(record)
    assert "with_bn" in summary and "±" in summary and "s / epoch" in summary
    assert (out / "curves.png").stat().st_size > 10_000
    assert f"wrote {out}" in capsys.readouterr().out

    # rerunning with more epochs resumes each run from its checkpoint
    resumed, _ = run_study("batchnorm_cifar", out, *SMALL, "--epochs", "2", "--seeds", "2")
    assert [r["epoch"] for r in resumed["with_bn"]["0"]] == [1, 2]
    assert resumed["with_bn"]["0"][:1] == history["with_bn"]["0"]

    # one event-file folder per model, every epoch's scalars, train and validation side by side
    logged = _scalars(out / "tensorboard" / "with_bn" / "seed1")
    record = resumed["with_bn"]["1"][-1]
    assert [step for step, _ in logged["loss/train"]] == [1, 2]
    assert logged["accuracy/val"][-1][1] == pytest.approx(record["val_accuracy"])
    assert logged["optimizer/learning_rate"][-1][1] == pytest.approx(1e-3)
    assert {"loss/val", "accuracy/train", "seconds/epoch"} <= set(logged)

    with pytest.raises(UsageError, match=r"other settings \(lr\)"):
        run_study("batchnorm_cifar", out, *SMALL, "--epochs", "2", "--seeds", "2", "--lr", "0.1")
    # a folder from before an option existed (and before identity.json) holds runs at that option's default
    (out / "checkpoints" / "identity.json").unlink()
    (out / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "stream"}))
    assert run_study("batchnorm_cifar", out, *SMALL, "--epochs", "2", "--seeds", "2")[0] == resumed
    with pytest.raises(UsageError, match=r"other settings \(stream\)"):
        run_study("batchnorm_cifar", out, *SMALL, "--epochs", "2", "--seeds", "2", "--stream")


@pytest.mark.optimized
def test_stream_sequential_seeds_and_the_parameter_table(shapes_cifar, run_study, tmp_path, capsys):
    """``--stream`` trains from host batches; ``--sequential-seeds`` trains each seed alone, the
    same models as the vmapped group; report 000's parameter table is printed."""
    args = ("--dataset", "shapes/cifar", "--train-size", "128", "--test-size", "64", "--epochs", "1", "--seeds", "2",
            "--stream")
    together, _ = run_study("mnist_baseline", tmp_path / "vmapped", *args)
    apart, summary = run_study("mnist_baseline", tmp_path / "sequential", *args, "--sequential-seeds")
    assert (tmp_path / "sequential" / "checkpoints" / "mnist_cnn" / "seed1").is_dir()
    for seed in ("0", "1"):
        a, b = together["mnist_cnn"][seed][0], apart["mnist_cnn"][seed][0]
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=2e-4), (seed, key)
    assert together["mnist_cnn"]["0"][0]["train_loss"] != together["mnist_cnn"]["1"][0]["train_loss"]
    printed = capsys.readouterr().out
    assert "| conv3 |" in printed and "| **total** |" in printed and "test accuracy" in summary


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "positive integer"),
    (["--batch-size", "many"], "positive integer"),
    (["--lr", "-1"], "positive number"),
    (["--optimizer", "adamm"], "invalid choice"),
])
def test_malformed_arguments_are_argparse_errors(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        study("batchnorm_cifar").run([*args, "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_lists_the_datasets_defaults_and_running_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        study("batchnorm_cifar").run(["--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and "shapes/cifar" in text and "cifar10" in text
    assert "(default: adam)" in text and "(default: 0.001)" in text and "(default: None)" not in text
    assert "a rerun that changes these resumes the same runs" in text
    with pytest.raises(SystemExit):
        study("prune_densenet").run(["--help"])
    assert "(default: 4,3,2,1)" in " ".join(capsys.readouterr().out.split())  # a list as it is typed


class _ShapeBug(nn.Module):
    """A model being edited: its kernel does not fit its input."""

    @nn.compact
    def __call__(self, x, train=False):
        kernel = self.param("kernel", nn.initializers.zeros, (3, 10))
        return x.reshape(x.shape[0], -1) @ kernel, {}


def test_a_bug_keeps_its_traceback_and_a_usage_error_is_one_line(shapes_cifar, data_dir, tmp_path, capsys):
    p = experiment.parser("bug", "", dataset="shapes/cifar", epochs=1, batch_size=64, seeds=1)
    argv = ["--data-dir", data_dir, "--train-size", "64", "--out", str(tmp_path), "--no-progress"]

    def buggy():
        study_ = experiment.Study("bug", p, argv)
        train, test, _ = study_.load_data()
        study_.run("bug", _ShapeBug(), train, test, optimizer=make_optimizer("sgd", 0.1))

    with pytest.raises(TypeError, match="dot_general"):  # not turned into "error: ..." and exit 2
        experiment.main(buggy)
    assert "error:" not in capsys.readouterr().err

    def wrong():
        raise UsageError("--lr 10 diverged; lower it")

    with pytest.raises(SystemExit) as exit_:
        experiment.main(wrong)
    assert exit_.value.code == 2 and capsys.readouterr().err == "error: --lr 10 diverged; lower it\n"


def test_a_split_size_beyond_the_dataset_is_refused_not_cut(shapes_cifar, data_dir, tmp_path):
    """shapes/cifar has 5,000 training and 1,000 test images: a config recording more would lie."""
    p = experiment.parser("sizes", "", dataset="shapes/cifar", epochs=1, batch_size=64, seeds=1)

    def load(*argv):
        return experiment.Study("sizes", p, ["--data-dir", data_dir, "--out", str(tmp_path), *argv]).load_data()

    with pytest.raises(UsageError, match="--train-size 5,001 asks for more than the 5,000 examples of shapes/cifar's "
                                         "train split"):
        load("--train-size", "5001")
    with pytest.raises(UsageError, match="--test-size 1,001 asks for more than the 1,000 examples of shapes/cifar's "
                                         "test split"):
        load("--test-size", "1001")
    train, test, _ = load("--train-size", "5000", "--test-size", "1000")
    assert (len(train["label"]), len(test["label"])) == (5000, 1000)


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """Every script run as a program with a dataset that is not there offline, a few at a time
    (their imports use one core each): ``{script: CompletedProcess}``."""
    tmp = tmp_path_factory.mktemp("programs")

    def run(script):
        easy = ["--easy-dataset", "mnist"] if script == "shapes_classification" else []
        return subprocess.run([sys.executable, str(ROOT / "experiments" / f"{script}.py"), "--dataset", "mnist", *easy,
                               "--data-dir", str(tmp / "empty"), "--out", str(tmp / script)], capture_output=True,
                              text=True, timeout=600, cwd=ROOT, env={**os.environ, "JAXCV_OFFLINE": "1"})

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(SCRIPTS, pool.map(run, SCRIPTS)))


@pytest.mark.parametrize("script", SCRIPTS)
def test_command_line_contract(script, programs):
    """As a program: ``experiment.main`` turns a user error into one line and exit code 2."""
    proc = programs[script]
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and last.startswith("error: ") and "--data-dir" in last
