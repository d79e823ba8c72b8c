"""Pure ``flax.linen`` models and a registry: ``get_model(name, **overrides)``."""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn

from jaxcv.errors import UsageError
from jaxcv.models.backbone import Backbone, BatchNormBackbone
from jaxcv.models.cnn import CifarCNN, MnistCNN
from jaxcv.models.densenet import DenseNet
from jaxcv.models.lenet import LeNet, LeNetModel1, LeNetModel2
from jaxcv.models.preprocess import deprocess, preprocess
from jaxcv.models.resnet import ResNet
from jaxcv.models.shapes import Hourglass, ShapesDeepCNN, ShapesLinear, ShapesShallowCNN, VertexRegressor
from jaxcv.models.summary import ParamRow, count_params, param_table
from jaxcv.models.vgg import VGG

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "mnist_cnn": MnistCNN,
    "keras_mnist_cnn": functools.partial(MnistCNN, conv_features=(32, 32)),
    "cifar_cnn": CifarCNN,
    "cifar_cnn_bn": functools.partial(CifarCNN, batchnorm=True),
    "lenet": LeNet,
    "lenet_model1": LeNetModel1,
    "lenet_model2": LeNetModel2,
    "shapes_linear": ShapesLinear,
    "shapes_shallow_cnn": ShapesShallowCNN,
    "shapes_deep_cnn": ShapesDeepCNN,
    "vertex_regressor": VertexRegressor,
    "hourglass": Hourglass,
    "vgg16": functools.partial(VGG, depth=16),
    "vgg19": functools.partial(VGG, depth=19),
    "resnet18": functools.partial(ResNet, depth=18),
    "resnet50": functools.partial(ResNet, depth=50),
    "densenet121": functools.partial(DenseNet, depth=121),
}


def list_models() -> list[str]:
    """Names that ``get_model`` accepts."""
    return sorted(_REGISTRY)


def get_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model, overriding any of its fields (``num_classes=3`` ...)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; choose from {', '.join(list_models())}") from None
    return factory(**overrides)


__all__ = ["get_model", "list_models", "count_params", "param_table", "ParamRow",
           "MnistCNN", "CifarCNN", "LeNet", "LeNetModel1", "LeNetModel2",
           "ShapesLinear", "ShapesShallowCNN", "ShapesDeepCNN", "VertexRegressor", "Hourglass",
           "Backbone", "BatchNormBackbone", "VGG", "ResNet", "DenseNet", "preprocess", "deprocess"]
