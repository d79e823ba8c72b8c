"""Weight files for tests: jaxcv variables written as the files users have."""

from pathlib import Path

import numpy as np


def torchvision_state(variables) -> dict[str, np.ndarray]:
    """jaxcv ResNet variables as a torchvision state dict of numpy arrays (the inverse map)."""
    names = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    state = {}
    for collection in ("params", "batch_stats"):
        for layer, values in variables[collection].items():
            for param, value in values.items():
                value = np.asarray(value)
                value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T if value.ndim == 2 else value
                state[f"{layer.replace('_', '.')}.{names[param]}"] = np.ascontiguousarray(value)
    return state


def random_resnet18_file(path: Path, num_classes: int = 1000, seed: int = 0) -> Path:
    """A torchvision-layout ``.safetensors`` of a ResNet18 with freshly initialised weights."""
    import jax
    import jax.numpy as jnp
    from safetensors.numpy import save_file

    from jaxcv.models import get_model

    model = get_model("resnet18", num_classes=num_classes)
    variables = jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))
    save_file(torchvision_state(variables), path)
    return path
