"""What the neural-style peers share: their command line and the JSON record they print.
Plain Python and numpy only, so that any peer's interpreter can import it."""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np


def parse(description: str) -> tuple[np.lib.npyio.NpzFile, int]:
    """``DATA.npz ITERATIONS`` from the command line: the loaded data and the timed iterations."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("data", help=".npz: 'content', 'style', 'start' (H, W, 3) caffe-space, "
                                "VGG16 'blockB_convI/kernel|bias'")
    p.add_argument("iterations", type=int, help="timed iterations, after one untimed")
    args = p.parse_args()
    return np.load(args.data), args.iterations


def report(impl: str, seconds: list[float], evaluations: list[int], initial_loss: float, losses: list[float],
           **extra: object) -> None:
    """Print the record: the median of the iterations after the first (untimed) one."""
    print(json.dumps({"impl": impl, "iteration_seconds": statistics.median(seconds[1:]),
                      "first_iteration_seconds": seconds[0], "seconds": seconds[1:], "evaluations": evaluations[1:],
                      "initial_loss": initial_loss, "losses": losses, **extra}))
