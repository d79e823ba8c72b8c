"""What a run survives, and how it fails when it cannot go on (the README's "Resuming, damage
and failures"), each probed on a tiny run: ``mnist_baseline``'s model on 128 shapes, 1–2 epochs.

- A damaged latest checkpoint (data truncated, zeroed or overwritten, a part missing) is named,
  set aside, and the previous epoch resumes: the run ends as if nothing had happened.
- A model whose loss turns non-finite fails its study (exit 2, named), marked in the summary and
  its table; history.json stays strict JSON.
- A rerun cannot mislabel numbers: fewer epochs than were trained is refused, the compile time
  is kept, a lost or emptied config.json neither blocks nor relabels a run; a start that failed
  before its first checkpoint blocks nothing.
- One process per run folder; an --out that cannot be created is a one-line usage error.
"""

import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import study
from jaxcv import experiment
from jaxcv.bench import synthetic
from jaxcv.data import num_classes
from jaxcv.errors import UsageError
from jaxcv.files import write_json
from jaxcv.models import get_model
from jaxcv.models.cnn import MnistCNN
from jaxcv.train import Checkpointer, NonFiniteLossError, fit_many, make_optimizer
from jaxcv.train.checkpoint import DIGESTS

SMALL = ("--dataset", "shapes/cifar", "--train-size", "128", "--test-size", "64", "--batch-size", "64")
KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _largest_data_file(folder):
    return max((p for p in _files(folder / "state") if p.parent.name == "d"), key=lambda p: p.stat().st_size)


def _truncate(folder):
    path = _largest_data_file(folder)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _overwrite(folder):
    """Random bytes in the middle of a data file, its size unchanged."""
    path = _largest_data_file(folder)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 4: len(raw) // 2] = np.random.default_rng(0).bytes(len(raw) // 2 - len(raw) // 4)
    path.write_bytes(bytes(raw))


def _zero(folder):
    """Every file its size in zeros: a power loss before the data reached the disk."""
    for path in _files(folder):
        path.write_bytes(bytes(path.stat().st_size))


DAMAGES = {
    "truncated data": (_truncate, "differs from what was saved"),
    "overwritten data": (_overwrite, "differs from what was saved"),
    "zeroed files": (_zero, f"{DIGESTS} is damaged"),
    "no meta": (lambda f: (f / "meta" / "metadata").unlink(), "meta/metadata is missing"),
    "no state": (lambda f: shutil.rmtree(f / "state"), "is missing"),
    "no digests": (lambda f: (f / DIGESTS).unlink(), f"{DIGESTS} is missing"),
}


def _tree(epoch):
    return {"w": np.full((4, 50), epoch, np.float32), "step": np.full((), epoch, np.int32)}


def test_the_first_and_the_last_epochs_are_kept_and_any_kept_one_restores(tmp_path):
    ckpt = Checkpointer(tmp_path / "c", keep=2)
    for epoch in range(1, 6):
        ckpt.save(epoch, _tree(epoch), {"epoch": epoch, "loss": float("nan")})
    assert ckpt.epochs() == [1, 4, 5]
    state, meta = ckpt.restore(1, _tree(0))
    assert meta == {"epoch": 1, "loss": pytest.approx(float("nan"), nan_ok=True)} and state["w"][0, 0] == 1
    assert ckpt.restore_latest(_tree(0))[1]["epoch"] == 5
    with pytest.raises(UsageError, match=r"no checkpoint of epoch 3 \(it has \[1, 4, 5\]\)"):
        ckpt.restore(3, _tree(0))
    meta_file = tmp_path / "c" / "5" / "meta" / "metadata"
    assert json.loads(meta_file.read_text(), parse_constant=_refuse)["loss"] == "NaN"  # strict JSON
    ckpt.close()


def _refuse(constant):
    raise AssertionError(f"{constant} is not JSON")


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_latest_epoch_is_named_set_aside_and_the_previous_one_restored(damage, tmp_path, capsys):
    damage_fn, reason = DAMAGES[damage]
    ckpt = Checkpointer(tmp_path / "c")
    for epoch in (1, 2, 3):
        ckpt.save(epoch, _tree(epoch), {"epoch": epoch})
    ckpt.close()
    damage_fn(tmp_path / "c" / "3")

    ckpt = Checkpointer(tmp_path / "c")
    with pytest.raises(UsageError, match=f"checkpoint .*/c/3 is damaged: .*{reason}"):
        ckpt.restore(3, _tree(0))
    state, meta = ckpt.restore_latest(_tree(0))
    assert meta == {"epoch": 2} and (state["w"] == 2).all()
    line, = capsys.readouterr().err.splitlines()
    assert line.startswith("checkpoint of epoch 3 skipped: ") and reason in line and line.endswith("c.damaged/3")
    assert ckpt.epochs() == [1, 2] and (tmp_path / "c.damaged" / "3").is_dir()
    ckpt.save(3, _tree(3), {"epoch": 3})  # the run goes on from there
    assert ckpt.restore_latest(_tree(0))[1] == {"epoch": 3}
    ckpt.close()


def _terminated(signum, frame):
    from jaxcv import experiment

    experiment._terminated(signum, frame)


@pytest.mark.parametrize("signum, handler", [
    # Python's own Ctrl-C handler, as in a terminal (a shell's background job starts with SIGINT
    # ignored, and an ignored SIGINT stays ignored); a study's SIGTERM handler
    (signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, _terminated)])
def test_an_interrupt_during_a_save_takes_effect_once_the_epoch_is_saved(signum, handler, tmp_path, monkeypatch,
                                                                         capsys):
    ckpt = Checkpointer(tmp_path / "c")
    save = ckpt._manager.save

    def interrupted(*args, **kwargs):
        signal.raise_signal(signum)
        return save(*args, **kwargs)

    monkeypatch.setattr(ckpt._manager, "save", interrupted)
    previous = signal.signal(signum, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            ckpt.save(1, _tree(1), {"epoch": 1})
        assert signal.getsignal(signum) is handler
    finally:
        signal.signal(signum, previous)
    assert ckpt.restore_latest(_tree(0))[1] == {"epoch": 1} and capsys.readouterr().err == ""
    ckpt.close()


@pytest.fixture(scope="module")
def small(shapes_cifar, data_dir):
    """The data, model and options of ``mnist_baseline`` run with ``SMALL`` (one compiled program)."""
    train, test = ({k: v[:n] for k, v in split.items()} for split, n in zip(shapes_cifar, (128, 64)))
    model = get_model("mnist_cnn", num_classes=num_classes("shapes/cifar", data_dir))
    return model, train, test, dict(seeds=[0], optimizer=make_optimizer("adadelta", 1.0), batch_size=64,
                                    progress=False)


@pytest.mark.optimized
def test_a_run_resumes_past_a_damaged_checkpoint_as_if_uninterrupted(small, tmp_path, capsys):
    model, train, test, kw = small
    whole, = fit_many(model, train, test, epochs=2, checkpoint_dir=tmp_path / "c", **kw)
    _zero(tmp_path / "c" / "2")  # a power loss right after epoch 2 was saved
    resumed, = fit_many(model, train, test, epochs=2, checkpoint_dir=tmp_path / "c", **kw)
    assert "checkpoint of epoch 2 skipped" in capsys.readouterr().err
    assert [[r[k] for k in KEYS] for r in resumed.history] == [[r[k] for k in KEYS] for r in whole.history]

    # a rerun of the finished run: nothing trains, the compile time is the one measured
    again, = fit_many(model, train, test, epochs=2, checkpoint_dir=tmp_path / "c", **kw)
    assert again.history == resumed.history and again.compile_seconds == resumed.compile_seconds > 0
    with pytest.raises(UsageError, match="trained for 2 epochs, more than the 1 asked"):
        fit_many(model, train, test, epochs=1, checkpoint_dir=tmp_path / "c", **kw)


@pytest.mark.optimized
def test_a_diverged_model_fails_the_study_on_the_default_path(run_study, tmp_path, capsys):
    """``mnist_baseline`` trains one seed (a vmapped group of one) by default."""
    out = tmp_path / "o"
    for _ in range(2):  # the run, then its rerun from the checkpoint, fail alike
        with pytest.raises(NonFiniteLossError, match=r"1 run\(s\) failed \(mnist_cnn/seed0: the training loss "
                                                     r"became nan in epoch 1\)"):
            run_study("mnist_baseline", out, *SMALL, "--epochs", "1", "--lr", "1e30")
    assert capsys.readouterr().err.count("failed: mnist_cnn/seed0") == 2
    summary = (out / "summary.md").read_text()
    assert summary.startswith("**Failed:**") and "| mnist_cnn | failed |" in summary
    history = json.loads((out / "history.json").read_text(), parse_constant=_refuse)
    assert history["mnist_cnn"]["0"][0]["train_loss"] == "NaN"


@pytest.mark.parametrize("script,args,message", [
    ("mnist_baseline", ["--lr", "inf"], "expected a finite positive number"),
    ("mnist_baseline", ["--lr", "nan"], "expected a finite positive number"),
    ("mnist_baseline", ["--lr", "1e400"], "expected a finite positive number"),
    ("mnist_baseline", ["--dataset", ""], "expected a dataset name"),
    ("mnist_baseline", ["--data-dir", __file__], "is not a folder"),
    ("transfer_vgg16", ["--dropout", "nan"], "expected a dropout rate in [0, 1)"),
    ("transfer_vgg16", ["--dropout", "1"], "expected a dropout rate in [0, 1)"),
])
def test_non_finite_rates_empty_names_and_file_folders_are_argparse_errors(script, args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        study(script).run([*args, "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "o").exists()


@pytest.mark.optimized
def test_reruns_cannot_mislabel_a_run(run_study, tmp_path):
    out = tmp_path / "o"
    _, summary = run_study("mnist_baseline", out, *SMALL, "--epochs", "2")
    assert run_study("mnist_baseline", out, *SMALL, "--epochs", "2")[1] == summary  # compile s too
    with pytest.raises(UsageError, match="trained for 2 epochs, more than the 1 asked"):
        run_study("mnist_baseline", out, *SMALL, "--epochs", "1")

    config = out / "config.json"
    config.write_text("")  # a kill while an older jaxcv wrote it
    assert run_study("mnist_baseline", out, *SMALL, "--epochs", "2")[1] == summary
    assert json.loads(config.read_text())["lr"] == 1.0
    config.unlink()  # the checkpoints keep the runs' identity
    with pytest.raises(UsageError, match=r"other settings \(lr\)"):
        run_study("mnist_baseline", out, *SMALL, "--epochs", "2", "--lr", "0.5")
    (out / "checkpoints" / "identity.json").unlink()  # a folder from before identity.json
    with pytest.raises(UsageError, match="holds checkpoints but no config.json"):
        run_study("mnist_baseline", out, *SMALL, "--epochs", "2")
    config.write_text("{")
    with pytest.raises(UsageError, match=f"{config} is damaged"):
        run_study("mnist_baseline", out, *SMALL, "--epochs", "2")


def _study(out):
    p = experiment.parser("probe", "", dataset="shapes/cifar", epochs=1, batch_size=64, seeds=1)
    return experiment.Study("probe", p, ["--out", str(out)])


def test_an_option_of_several_values_resumes_and_a_change_to_it_is_refused(tmp_path):
    """``--tops 0,1024`` parses to a tuple and reads back from identity.json as a list: the
    same command resumes (it was refused as "other settings"); other values do not."""
    def probe(*argv):
        p = experiment.parser("probe", "", dataset="shapes/cifar", epochs=1, batch_size=64, seeds=1)
        p.add_argument("--tops", type=experiment.positive_ints, default=(1024,))
        return experiment.Study("probe", p, ["--out", str(tmp_path), *argv])

    first = probe("--tops", "8,16")
    (tmp_path / "checkpoints" / "probe" / "seed0" / "1").mkdir(parents=True)  # a saved epoch
    write_json(first.identity_path, first.config)  # as training begins
    assert probe("--tops", "8,16").config["tops"] == (8, 16)
    with pytest.raises(UsageError, match=r"other settings \(tops\)"):
        probe()


@pytest.mark.parametrize("damage", [lambda path: path.write_bytes(path.read_bytes()[:100]),
                                    lambda path: path.write_bytes(b"")])
def test_a_kept_result_is_computed_once_and_again_only_if_damaged(tmp_path, capsys, damage):
    made = []

    def compute():
        made.append(1)
        return {"images": np.arange(100.0), "terms/style": np.ones(3)}

    for _ in range(2):
        kept = _study(tmp_path).resumable("layer5", compute)
        assert list(kept) == ["images", "terms/style"] and kept["images"].tolist() == list(range(100))
    assert len(made) == 1 and (tmp_path / "checkpoints" / "identity.json").is_file()
    path = tmp_path / "checkpoints" / "layer5.npz"
    damage(path)
    assert _study(tmp_path).resumable("layer5", compute)["terms/style"].tolist() == [1, 1, 1]
    assert len(made) == 2 and f"{path} is damaged" in capsys.readouterr().err
    assert np.load(path)["images"].tolist() == list(range(100))  # kept again


def test_a_second_process_is_refused_the_run_folder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(tmp_path / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()}\\n'.encode()); print('held', flush=True)\n"
        "sys.stdin.read()")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UsageError, match=f"{tmp_path} is in use by process {holder.pid} "):
            _study(tmp_path)
    finally:
        holder.communicate("")
    assert _study(tmp_path).out == tmp_path  # free once that process ended
    assert (tmp_path / ".lock").read_text().strip() != str(holder.pid)


@pytest.mark.parametrize("where", ["a file", "under a file", "/proc"])
def test_an_out_that_cannot_be_created_is_a_usage_error(where, tmp_path):
    (tmp_path / "f").write_text("")
    out = {"a file": tmp_path / "f", "under a file": tmp_path / "f" / "o", "/proc": "/proc/jaxcv-run"}[where]
    with pytest.raises(UsageError, match=f"cannot use {out} as the run folder"):
        _study(out)


def test_a_start_that_fails_leaves_no_record_of_runs(tmp_path, capsys):
    study_ = _study(tmp_path)  # then, say, its dataset is not there
    assert not (tmp_path / "config.json").exists()
    study_.write_summary("# nothing trained")
    assert json.loads((tmp_path / "config.json").read_text())["study"] == "probe"
    assert not (tmp_path / "checkpoints").exists()  # a rerun with other settings stays free


def test_a_start_that_fails_before_its_first_checkpoint_leaves_the_folder_free(tmp_path):
    """The options are recorded with the checkpoints as training begins; a run that fails
    before it saves an epoch (here: a batch larger than its data) holds none, so its rerun may
    change them.  Once an epoch is saved, other options are refused."""
    p = experiment.parser("probe", "", dataset="shapes/cifar", epochs=1, batch_size=64, seeds=1)

    def run(batch_size):
        study_ = experiment.Study("probe", p, ["--out", str(tmp_path), "--batch-size", batch_size])
        return study_.run("v", MnistCNN(conv_features=(4,), dense_features=(8,)), synthetic((10, 10, 1), 64), None,
                          optimizer=make_optimizer("sgd", 0.1))

    with pytest.raises(UsageError, match="64 training examples make no batch of 128"):
        run("128")
    assert (tmp_path / "checkpoints" / "identity.json").exists()
    assert run("32")
    assert (tmp_path / "checkpoints" / "v" / "1").is_dir()  # epoch 1 saved
    with pytest.raises(UsageError, match=r"other settings \(batch_size\)"):
        experiment.Study("probe", p, ["--out", str(tmp_path), "--batch-size", "16"])


def test_a_sigterm_stops_a_study_as_a_ctrl_c_does(capsys):
    from jaxcv import experiment

    def preempted():
        signal.raise_signal(signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        experiment.main(preempted)
    assert exit_.value.code == 130 and "rerun the same command to resume" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is previous
