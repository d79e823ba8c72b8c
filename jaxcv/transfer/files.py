"""Weight files as users have them, read into one form: a list of layers, each with the
tensors in jaxcv's order and axis layout.

- Keras 2 HDF5 (``keras.applications``' ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``,
  Keras 3's legacy ``.h5`` writer): root attribute ``layer_names``, one group per layer with
  a ``weight_names`` attribute (``block1_conv1/kernel:0``); whole saved models keep them
  under ``model_weights``.
- Keras 3 ``.weights.h5``: a group per object (``layers/conv2d_3/vars/0``, ``1`` ...), the
  layer's name in the ``vars`` group's ``name`` attribute.
- PyTorch state dicts (``.pth`` / ``.pt`` through ``torch.load``, ``.safetensors`` without
  torch): ``layer1.0.conv1.weight`` ..., kernels transposed from OIHW to HWIO and linear
  weights from ``(out, in)`` to ``(in, out)``.

Per layer the order is kernel (or BatchNorm scale), bias, then BatchNorm's mean and
variance, which is both Keras' order and flax's ``params`` then ``batch_stats``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from jaxcv.errors import UsageError

KERAS_ORDER = {"kernel": 0, "gamma": 0, "bias": 1, "beta": 1, "moving_mean": 2, "moving_variance": 3}
TORCH_ORDER = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
TORCH_SUFFIXES = (".pth", ".pt", ".bin")


class Entry(NamedTuple):
    """One layer of a weight file: ``key`` is its place in the file (a Keras 3 group path, a
    Keras 2 layer name, a PyTorch module path), ``name`` the Keras layer name stored with it
    (``None`` where the file keeps none)."""

    key: str
    name: str | None
    tensors: list[np.ndarray]


class WeightFile(NamedTuple):
    path: Path
    format: str
    """``keras2`` (HDF5 with ``layer_names``), ``keras3`` (``.weights.h5``) or ``torch``."""
    entries: list[Entry]


def read_weight_file(path: str | os.PathLike) -> WeightFile:
    """Every layer with tensors in the Keras or PyTorch weight file at ``path``.  A missing,
    truncated or foreign file is a ``UsageError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such weight file")
    if path.suffix == ".safetensors":
        return WeightFile(path, "torch", _torch_entries(_read_safetensors(path)))
    if path.suffix in TORCH_SUFFIXES:
        return WeightFile(path, "torch", _torch_entries(_read_pth(path)))
    if not h5py.is_hdf5(path):
        raise UsageError(f"{path}: not an HDF5 file (a Keras weight file is HDF5; is it truncated or "
                         f"of another format? PyTorch files need a {'/'.join(TORCH_SUFFIXES)} or .safetensors suffix)")
    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)
            if _attribute_list(root, "layer_names"):
                return WeightFile(path, "keras2", _keras2_entries(root))
            entries = _keras3_entries(f)
    except (OSError, KeyError) as e:  # h5py's errors for damaged files and dangling links
        raise UsageError(f"{path}: a damaged HDF5 file ({e})") from None
    if not entries:
        raise UsageError(f"{path}: no Keras weights in this HDF5 file (no layer_names attribute, no .../vars groups)")
    return WeightFile(path, "keras3", entries)


def _attribute_list(group: h5py.Group, name: str) -> list[str]:
    """A list attribute as Keras writes it: whole, or in chunks ``name0``, ``name1`` ... when
    it exceeds HDF5's 64 kB header limit."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for chunk in chunks for n in chunk]


def _keras2_entries(root: h5py.Group) -> list[Entry]:
    entries = []
    for layer in _attribute_list(root, "layer_names"):
        group = root[layer]
        names = _attribute_list(group, "weight_names")
        # "block1_conv1/kernel:0" (Keras 2) or "block1_conv1/kernel" (Keras 3's legacy writer)
        ranked = sorted(names, key=lambda n: KERAS_ORDER.get(n.rsplit("/", 1)[-1].split(":")[0], len(KERAS_ORDER)))
        if ranked:
            entries.append(Entry(layer, layer, [np.asarray(group[n]) for n in ranked]))
    return entries


def _keras3_entries(f: h5py.File) -> list[Entry]:
    entries = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and len(obj):
            tensors = [np.asarray(obj[str(i)]) for i in range(len(obj))]
            layer = obj.attrs.get("name")
            layer = layer.decode("utf8") if isinstance(layer, bytes) else layer
            entries.append(Entry(name.rsplit("/", 1)[0] if "/" in name else "", layer, tensors))

    f.visititems(visit)
    return entries


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError:
        raise UsageError(f"{path}: reading .safetensors needs safetensors (pip install safetensors)") from None

    try:
        return load_file(path)
    except SafetensorError as e:
        raise UsageError(f"{path}: not a readable safetensors file ({e})") from None


def _read_pth(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise UsageError(f"{path}: reading a PyTorch .pth file needs torch (pip install torch), "
                         "or convert it to .safetensors") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as e:
        raise UsageError(f"{path}: not a readable PyTorch file ({e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path}: not a PyTorch state dict (a mapping of names to tensors)")
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def _torch_entries(state: dict[str, np.ndarray]) -> list[Entry]:
    """Group ``module.param`` tensors by module, transposed to flax's axis layout."""
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if param != "num_batches_tracked":
            modules.setdefault(module, {})[param] = value
    entries = []
    for module, params in modules.items():
        ranked = sorted(params, key=lambda p: TORCH_ORDER.get(p, len(TORCH_ORDER)))
        entries.append(Entry(module, None, [_to_flax(params[p]) for p in ranked]))
    return entries


def _to_flax(t: np.ndarray) -> np.ndarray:
    """OIHW conv kernels to HWIO, ``(out, in)`` linear weights to ``(in, out)``."""
    if t.ndim == 4:
        return np.ascontiguousarray(t.transpose(2, 3, 1, 0))
    if t.ndim == 2:
        return np.ascontiguousarray(t.T)
    return t
