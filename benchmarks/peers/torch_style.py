"""PyTorch's neural style tutorial (pytorch/tutorials, ``neural_style_tutorial.py``) on VGG16
with the Keras example's loss, timed per iteration.

Run by ``benchmarks/style.py --peers torch`` in its own process: ``python torch_style.py
DATA.npz ITERATIONS`` prints one JSON record.  As the tutorial: VGG features as an
``nn.Sequential`` (here VGG16's with the weights in DATA.npz, not torchvision's VGG19), content
and style targets computed once and detached, ``torch.optim.LBFGS([image])`` with its defaults
(``max_iter=20``: 20 evaluations per ``step``) and one ``step(closure)`` per iteration.  The loss
and layers are the Keras example's (see ``keras_style.py``), on the caffe-space image, so that
all peers minimise the same function; the tutorial's clamp to ``[0, 1]`` does not apply there.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from style_peer import parse, report

BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
STYLE_LAYERS = [f"block{b}_conv1" for b in range(1, 6)]
CONTENT_LAYER = "block4_conv2"


class VGG16Features(nn.Module):
    """VGG16's convolutions up to the deepest layer asked for, returning those layers' activations."""

    def __init__(self, data: np.lib.npyio.NpzFile, names: list[str]):
        super().__init__()
        self.names = names
        self.layers = nn.ModuleDict()
        self.order: list[str] = []
        channels = 3
        for b, (width, convs) in enumerate(BLOCKS, start=1):
            for i in range(1, convs + 1):
                name = f"block{b}_conv{i}"
                conv = nn.Conv2d(channels, width, 3, padding=1)
                conv.weight.data = torch.from_numpy(data[f"{name}/kernel"].transpose(3, 2, 0, 1).copy())
                conv.bias.data = torch.from_numpy(data[f"{name}/bias"].copy())
                self.layers[name] = conv
                self.order.append(name)
                channels = width
            self.order.append(f"pool{b}")
        self.order = self.order[: self.order.index(max(names, key=self.order.index)) + 1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = {}
        for name in self.order:
            if name.startswith("pool"):
                x = nn.functional.max_pool2d(x, 2)
            else:
                x = out[name] = torch.relu(self.layers[name](x))
        return [out[name] for name in self.names]


def gram(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1)
    return flat @ flat.T


def main() -> None:
    data, iterations = parse(__doc__)
    height, width = data["content"].shape[:2]

    def nchw(name: str) -> torch.Tensor:
        return torch.from_numpy(data[name].transpose(2, 0, 1)[None].copy())

    features = VGG16Features(data, [CONTENT_LAYER, *STYLE_LAYERS]).eval()
    for parameter in features.parameters():
        parameter.requires_grad_(False)
    with torch.no_grad():
        content_target = features(nchw("content"))[0][0]
        style_targets = [gram(f[0]) for f in features(nchw("style"))[1:]]
    size = height * width

    def loss_of(image: torch.Tensor) -> torch.Tensor:
        outs = features(image)
        loss = 0.025 * torch.sum(torch.square(outs[0][0] - content_target))
        for out, target in zip(outs[1:], style_targets):
            loss = loss + torch.sum(torch.square(gram(out[0]) - target)) / (4.0 * 3**2 * size**2) / len(STYLE_LAYERS)
        x = image[0]
        dy = torch.square(x[:, :-1, :-1] - x[:, 1:, :-1])
        dx = torch.square(x[:, :-1, :-1] - x[:, :-1, 1:])
        return loss + torch.sum((dy + dx) ** 1.25)

    image = nchw("start").requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad()
        loss = loss_of(image)
        loss.backward()
        return loss

    with torch.no_grad():
        initial_loss = float(loss_of(image))
    seconds, spent, losses = [], [], []
    for _ in range(iterations + 1):
        evaluations = 0
        start = time.perf_counter()
        optimizer.step(closure)
        seconds.append(time.perf_counter() - start)
        spent.append(evaluations)
        with torch.no_grad():
            losses.append(float(loss_of(image)))
    report("torch", seconds, spent, initial_loss, losses, threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
