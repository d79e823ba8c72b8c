"""jaxcv's ``mnist_cnn`` and ``cifar_cnn`` (± BatchNorm) in PyTorch eager, timed per epoch.

Run by ``benchmarks/epoch_times.py --peers torch`` in its own process:
``python torch_cnn.py DATA.npz MODEL BATCH REPEATS [--channels-last]`` prints one JSON record.
The layers, parameter counts, optimizer (Adam 1e-3), batch size and uint8 data (scaled to
[0, 1] per batch, shuffled each epoch) are jaxcv's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch import nn


def mnist_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Conv2d(32, 16, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(11 * 11 * 16, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def cifar_cnn(batchnorm: bool) -> nn.Module:
    def conv(cin: int, cout: int, padding: str) -> list[nn.Module]:
        layers = [nn.Conv2d(cin, cout, 3, padding=padding, bias=not batchnorm)]
        return layers + ([nn.BatchNorm2d(cout, momentum=0.1)] if batchnorm else []) + [nn.ReLU()]

    return nn.Sequential(
        *conv(3, 32, "same"), *conv(32, 32, "valid"), nn.MaxPool2d(2), nn.Dropout(0.25),
        *conv(32, 64, "same"), *conv(64, 64, "valid"), nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(6 * 6 * 64, 512, bias=not batchnorm), *([nn.BatchNorm1d(512)] if batchnorm else []), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(512, 10))


MODELS = {"mnist_cnn": mnist_cnn, "cifar_cnn": lambda: cifar_cnn(False), "cifar_cnn_bn": lambda: cifar_cnn(True)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data", help=".npz with uint8 'image' (N, H, W, C) and int 'label'")
    p.add_argument("model", choices=sorted(MODELS))
    p.add_argument("batch_size", type=int)
    p.add_argument("repeats", type=int)
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (often faster on CPU)")
    args = p.parse_args()
    data = np.load(args.data)
    images = torch.from_numpy(data["image"]).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
    labels = torch.from_numpy(data["label"]).long()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = MODELS[args.model]().to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = len(images) // args.batch_size * args.batch_size
    model.train()

    def epoch() -> float:
        start = time.perf_counter()
        order = torch.randperm(len(images))[:n]
        for i in range(0, n, args.batch_size):
            idx = order[i : i + args.batch_size]
            x = (images[idx].float() / 255.0).contiguous(memory_format=fmt)
            loss = nn.functional.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    times = [epoch() for _ in range(args.repeats + 1)]  # the first warms caches and is not counted
    steady = statistics.median(times[1:])
    print(json.dumps({
        "model": args.model, "impl": "torch-channels-last" if args.channels_last else "torch",
        "device": "cpu", "batch_size": args.batch_size, "examples": n, "epoch_seconds": steady,
        "epoch_seconds_all": times[1:], "images_per_second": n / steady,
        "compile_seconds": max(times[0] - steady, 0.0), "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()), "version": torch.__version__}))


if __name__ == "__main__":
    main()
