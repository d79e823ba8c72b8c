import jax
import jax.numpy as jnp
import pytest


from jaxcv.bench import compile_seconds, flops, synthetic, time_epochs
from jaxcv.models import get_model


def test_flops_of_a_known_matmul():
    compiled, seconds = compile_seconds(lambda a, b: a @ b, jnp.ones((8, 16)), jnp.ones((16, 4)))
    assert seconds > 0
    assert flops(compiled) == pytest.approx(2 * 8 * 16 * 4, rel=0.1)


@pytest.mark.parametrize("mode", ["scan", "loop"])
def test_time_epochs_reports_a_whole_epoch(mode):
    data = synthetic((32, 32, 3), 100)
    r = time_epochs(get_model("cifar_cnn"), data, jax.devices()[0], batch_size=32, mode=mode, repeats=2)
    assert r["examples"] == 96 and len(r["epoch_seconds_all"]) == 2
    assert r["epoch_seconds"] == pytest.approx(sum(r["epoch_seconds_all"]) / 2)  # median of two
    assert r["images_per_second"] == pytest.approx(96 / r["epoch_seconds"])
    assert r["flops_per_epoch"] > 3 * 96 * 30e6  # forward + backward of a ~40 MFLOP network


def test_time_epochs_rejects_bad_modes():
    with pytest.raises(ValueError, match="mode"):
        time_epochs(get_model("cifar_cnn"), synthetic((32, 32, 3), 64), jax.devices()[0], batch_size=32, mode="pmap")
