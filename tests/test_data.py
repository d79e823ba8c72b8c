"""The data pipeline: embedded sets (byte for byte as before array_record), whole splits, Grain
streaming (per-epoch shuffles, a share per host), no TensorFlow, clear errors."""

import hashlib
import logging
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

from jaxcv.data import DataUnavailableError, load_split, num_classes, pipeline, stream, streaming
from jaxcv.data.shapes import CIFAR_SHAPES, SHAPES, coverage, render_cifar, render_classic
from jaxcv.errors import UsageError

# SHA-256 of every embedded split as load_split returned it from the TFRecord files of shapes
# 1.1.0 (tensorflow-cpu 2.21, tensorflow-datasets 4.9.10), before the move to array_record
TFRECORD_SHA256 = {
    ("shapes/easy", "train"): "2b8704f38b4a39498725e30b6ac512debc2ffc3d4fa44e721527f23f3dff7496",
    ("shapes/easy", "test"): "76b77b09c332e86de63616cdde3df36d40b432133010ddf2477ebfe53d1581b1",
    ("shapes/hard", "train"): "7217bae2ab9dabf852fe826428282a9742e4e8543a459d18911fa481114952cb",
    ("shapes/hard", "test"): "741ac7b5fdb973b203dd2c548ab967e6ddc5939bfafbc28a0bab3e80aada4e5f",
    ("shapes/cifar", "train"): "f0b616ef7a50006fb84b64388c4d147d2046a102319161bbaeaa68ccf3c0687a",
    ("shapes/cifar", "test"): "482e747967694eb74f561411908664bf2b6f3afeb4a3694f60864623713f7607",
    ("shapes/triangles", "train"): "efaf48e43c5af227b063b710a13fb3eb3e0f6a7cfdea7469718bb2ea6b17080b",
    ("shapes/triangles", "test"): "117ab124cb58ba19a97196703ebb0b0382bdceebb321eb0e7cc018789a3f4025",
    ("shapes/denoise", "train"): "4a7e298d958c09e80fc121af1ab40631cec5667fb55023f134e731fcc0ac0b00",
    ("shapes/denoise", "test"): "a0b5324e1f338b845af9191421e655a7ed735eec11b1e5945461ccb53cd6a564",
}

def _sha256(arrays):
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(f"{key}:{arrays[key].dtype.str}:{arrays[key].shape}".encode())
        h.update(arrays[key].tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", ["shapes/easy", "shapes/hard", "shapes/cifar", "shapes/triangles", "shapes/denoise"])
def test_embedded_examples_are_those_of_the_tfrecord_era(name, request):
    train, test = request.getfixturevalue(name.replace("/", "_"))
    assert _sha256(train) == TFRECORD_SHA256[name, "train"]
    assert _sha256(test) == TFRECORD_SHA256[name, "test"]


def test_import_and_load_without_tensorflow(shapes_easy, data_dir):
    """Even where TensorFlow is installed, nothing imports it; and importing the figures leaves
    matplotlib's backend (a notebook's, say) alone."""
    code = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")
        import jaxcv, jaxcv.data, jaxcv.viz
        assert matplotlib.get_backend() == "svg" and "matplotlib.pyplot" not in sys.modules
        from jaxcv.data import load_split, num_classes
        test = load_split("shapes/easy", "test", {data_dir!r})
        assert test["image"].shape == (600, 72, 72, 1) and num_classes("shapes/easy", {data_dir!r}) == 3
        batch = next(jaxcv.data.stream("shapes/easy", "test", 32, {data_dir!r}, shuffle_seed=0))
        assert batch["image"].shape == (32, 72, 72, 1)
        assert "tensorflow" not in sys.modules, "TensorFlow was imported"
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]


def test_shapes_cifar_split(shapes_cifar):
    train, test = shapes_cifar
    assert train["image"].shape == (5000, 32, 32, 3) and test["image"].shape == (1000, 32, 32, 3)
    assert train["image"].dtype == np.uint8 and train["label"].dtype == np.int32
    counts = np.bincount(train["label"], minlength=10)
    assert counts.min() > 400  # roughly balanced over the ten classes
    assert train["image"].std() > 40  # colour images, not blank


def test_shapes_are_deterministic():
    a = render_cifar(np.random.default_rng(3), 4)
    b = render_cifar(np.random.default_rng(3), 4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    easy = render_classic(np.random.default_rng(0), 0)
    assert easy.shape == (72, 72) and easy.min() == 0 and easy.max() == 255


def test_coverage_geometry():
    centre = np.array([16.0, 16.0])
    disc = coverage(SHAPES["circle"], 32, centre, 8.0, 0.0)
    assert abs(disc.sum() - np.pi * 64) < 3  # area of a radius-8 disc, anti-aliased
    assert disc[16, 16] == 1 and disc[0, 0] == 0
    ring = coverage(SHAPES["ring"], 32, centre, 8.0, 0.0)
    assert ring[16, 16] == 0 and ring.sum() < disc.sum()
    assert len(CIFAR_SHAPES) == 10 and set(CIFAR_SHAPES) <= set(SHAPES)


def _rows(arrays):
    """Each example as bytes (image and label), to compare sets and orders of examples."""
    return [img.tobytes() + lab.tobytes() for img, lab in zip(arrays["image"], arrays["label"])]


def test_stream_is_the_split_in_order_or_shuffled_per_epoch(shapes_hard, data_dir):
    test = shapes_hard[1]  # 600 examples, all different (noisy)
    assert len(set(_rows(test))) == 600
    plain = list(stream("shapes/hard", "test", 64, data_dir))
    assert len(plain) == 600 // 64 and all(b["image"].shape == (64, 72, 72, 1) for b in plain)
    assert plain[0]["image"].dtype == np.uint8 and plain[0]["label"].dtype == np.int32
    np.testing.assert_array_equal(np.concatenate([b["image"] for b in plain]), test["image"][:576])

    def epoch(seed, e):
        batches = list(stream("shapes/hard", "test", 64, data_dir, shuffle_seed=seed, epoch=e))
        return _rows({k: np.concatenate([b[k] for b in batches]) for k in ("image", "label")})

    first, again, second = epoch(7, 0), epoch(7, 0), epoch(7, 1)
    assert first == again  # reproducible
    assert first != second and len(set(first)) == 576  # a new permutation each epoch, no repeats
    assert set(first) <= set(_rows(test)) and set(second) <= set(_rows(test))


def test_stream_gives_each_host_its_share(shapes_easy, data_dir, monkeypatch):
    hosts, batch = 3, 48
    shares = []
    for host in range(hosts):
        monkeypatch.setattr(streaming.jax, "process_count", lambda: hosts)
        monkeypatch.setattr(streaming.jax, "process_index", lambda host=host: host)
        shares.append(list(stream("shapes/easy", "test", batch, data_dir, shuffle_seed=1, epoch=2)))
    monkeypatch.undo()
    whole = list(stream("shapes/easy", "test", batch, data_dir, shuffle_seed=1, epoch=2))
    assert [len(s) for s in shares] == [len(whole)] * hosts == [600 // batch] * hosts  # same steps everywhere
    for step, global_batch in enumerate(whole):
        parts = [share[step] for share in shares]
        assert all(p["image"].shape[0] == batch // hosts for p in parts)
        for host, part in enumerate(parts):  # host i holds the i-th block of 16 of the global batch
            np.testing.assert_array_equal(part["image"], global_batch["image"][host * 16:(host + 1) * 16])
    monkeypatch.setattr(streaming.jax, "process_count", lambda: hosts)
    with pytest.raises(UsageError, match="multiple of the 3 hosts"):
        stream("shapes/easy", "test", 64, data_dir)


@pytest.mark.parametrize("name", ["shapes/cifar", "mnist", "cifar10", "image_folder/pets"])
def test_unprepared_builders_leave_no_temporary_folders(name, tmp_path, monkeypatch):
    """TFDS makes a temporary folder, and leaves it, for every unprepared builder whose metadata it
    would fetch from its GCS bucket: jaxcv's builders never ask (``builders.LocalBuilder``)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    config = {"source": str(tmp_path / "pets")} if name.startswith("image_folder/") else {}
    builder = pipeline.own_builder(name, tmp_path / "data", **config)
    assert not pipeline.is_prepared(builder) and builder.info.features["label"] is not None
    assert list((tmp_path / "temp").iterdir()) == []


def test_offline_error_names_data_dir_and_embedded_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCV_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as e:
        load_split("mnist", "train", str(tmp_path))
    assert isinstance(e.value, UsageError)
    assert "--data-dir" in str(e.value) and "shapes/cifar" in str(e.value) and "\n" not in str(e.value)


def test_unknown_dataset_and_split_are_clear_errors(shapes_easy, data_dir, tmp_path):
    with pytest.raises(DataUnavailableError, match="unknown dataset"):
        pipeline.prepared_builder("no_such_dataset_xyz", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="unknown dataset"):
        num_classes("no_such_dataset_xyz", str(tmp_path))
    for call in (pipeline.prepared_builder, num_classes):  # not "needs TensorFlow": jaxcv's builders shadow TFDS's
        for name in ("shapes/hrad", "mnist/foo"):
            with pytest.raises(DataUnavailableError, match=f"unknown dataset '{name}'; use one of"):
                call(name, str(tmp_path))
    with pytest.raises(DataUnavailableError, match="no split 'validation'.*train, test"):
        load_split("shapes/easy", "validation", data_dir)
    with pytest.raises(DataUnavailableError, match="python -m jaxcv.data prepare image_folder"):
        load_split("image_folder/not_prepared", "train", str(tmp_path))


def test_catalogue_datasets_need_tensorflow_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as where it is not installed
    for call in (load_split, num_classes):
        with pytest.raises(DataUnavailableError, match=r"TFDS catalogue dataset 'svhn_cropped' needs TensorFlow.*"
                                                       r"pip install 'jaxcv\[tf\]'"):
            call("svhn_cropped", *(("train",) if call is load_split else ()), str(tmp_path))


def test_a_catalogue_lookup_drops_only_tfds_reports_of_its_builders_clashing_with_jaxcvs(caplog):
    """TFDS imports its own mnist, cifar10 ... on its first catalogue lookup and logs their clash
    with jaxcv's builders as an error with a traceback, above the one line a user should see."""
    absl = logging.getLogger("absl")
    with caplog.at_level(logging.ERROR, logger="absl"), pipeline._without_clash_reports():
        absl.error("Dataset with name cifar10 already registered.")
        absl.error("another error")
    absl.error("Dataset with name mnist already registered.")  # outside a lookup: kept
    assert [r.getMessage() for r in caplog.records] == ["another error", "Dataset with name mnist already registered."]
