"""Seconds per neural-style iteration, jaxcv against peers; and many units in one call against one each.

Style: at ``--size`` x ``--size`` (default 400, the Keras example's height) on VGG16 with random
weights (the same in every implementation), content ``conv4_2``, style Grams of ``conv1_1`` …
``conv5_1``, the Keras example's weights; one iteration is one L-BFGS run of 20 evaluations.
jaxcv runs ``--iterations`` iterations as one compiled call (compile apart, after a warm-up call;
seconds per iteration = the call's time over the iterations); each peer runs in its own process
(``benchmarks/peers/keras_style.py``: Keras 3 on TensorFlow with scipy's L-BFGS, as the example;
``torch_style.py``: PyTorch's tutorial, ``torch.optim.LBFGS``), one untimed iteration then the
median of ``--iterations``.  All start from the same image; their initial losses are printed
side by side (the same function: equal to float precision) with the evaluations each iteration spent.

Units: ``--units`` filters of ``conv5_1`` maximised for ``--unit-steps`` normalised gradient
steps on ``--unit-size`` px images, as one call, against one call per unit (compiled once).

Writes ``benchmarks/results/style-<host>-<date>.json`` (or ``--json``) and the table beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxcv.bench import compile_clock, device_info, load, timed  # noqa: E402
from jaxcv.errors import one_line_usage_errors  # noqa: E402
from jaxcv.experiment import output_file, positive_int, program  # noqa: E402
from jaxcv.synthesis import Network, optimise  # noqa: E402
from jaxcv.synthesis.filters import filter_objective, filter_settings, grey_noise  # noqa: E402
from jaxcv.synthesis.network import caffe_input, vgg16  # noqa: E402
from jaxcv.synthesis.samples import load_image  # noqa: E402
from jaxcv.synthesis.style import noise_image, style_objective, style_settings  # noqa: E402
from jaxcv.viz import markdown_table  # noqa: E402



PEERS_DIR = Path(__file__).resolve().parent / "peers"
# impl: (script, environment, module it needs)
PEERS = {
    "keras-tf": ("keras_style.py", {"KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": ""}, "tensorflow"),
    "torch": ("torch_style.py", {"CUDA_VISIBLE_DEVICES": ""}, "torch"),
}


def style_record(network: Network, content: np.ndarray, style: np.ndarray, start: jax.Array,
                 iterations: int) -> dict:
    """jaxcv's seconds per style iteration, compile apart."""
    objective = style_objective(network, content, style)
    settings = style_settings(iterations=iterations)
    with compile_clock() as compiling:
        timed(optimise, network, objective, start, settings)
    result, seconds = timed(optimise, network, objective, start, settings)
    return {"impl": "jaxcv", "iteration_seconds": seconds / iterations, "compile_seconds": compiling[0],
            "evaluations": result.evaluations[0].tolist(), "initial_loss": float(result.loss[0, 0]),
            "losses": result.loss[0, 1:].tolist()}


def run_peer(impl: str, python: str, data: Path, iterations: int) -> dict | None:
    """A peer's record from its own process; ``None`` (with a note) if it cannot run."""
    script, env, module = PEERS[impl]
    check = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    if check.returncode != 0:
        print(f"skipping {impl}: {module} not importable by {python}", flush=True)
        return None
    proc = subprocess.run([python, str(PEERS_DIR / script), str(data), str(iterations)], capture_output=True,
                          text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        print(f"skipping {impl}: it failed:\n{proc.stderr[-2000:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def units_record(units: int, size: int, steps: int) -> dict:
    """``units`` conv5_1 filters maximised in one call against one call each, compile apart."""
    network = vgg16(None)
    objective, settings = filter_objective("conv5_1"), filter_settings(iterations=steps)
    images = grey_noise(jax.random.key(1), units, size)
    batch = lambda: optimise(network, objective, images, settings, units=np.arange(units))  # noqa: E731
    with compile_clock() as compiling:
        timed(batch)
    _, batched = timed(batch)
    one = lambda i: optimise(network, objective, images[i], settings, units=np.array([i]))  # noqa: E731
    timed(one, 0)  # compile
    start = time.perf_counter()
    for i in range(units):
        one(i)  # optimise returns numpy arrays: each call has finished when it returns
    separate = time.perf_counter() - start
    return {"units": units, "size": size, "steps": steps, "one_call_seconds": batched,
            "compile_seconds": compiling[0], "separate_calls_seconds": separate, "speedup": separate / batched}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=positive_int, default=400, help="style image side, px")
    p.add_argument("--iterations", type=positive_int, default=3, help="timed style iterations")
    p.add_argument("--peers", default="keras-tf,torch", help=f"comma-separated, from {', '.join(PEERS)} (or none)")
    p.add_argument("--peer-python", type=program, default=sys.executable,
                   help="the Python that runs the peers, with tensorflow and/or torch (default: this one)")
    p.add_argument("--units", type=positive_int, default=64)
    p.add_argument("--unit-size", type=positive_int, default=128)
    p.add_argument("--unit-steps", type=positive_int, default=20)
    p.add_argument("--skip", default="", help="comma-separated parts to leave out: style, units")
    p.add_argument("--json", type=output_file, default=None)
    args = p.parse_args()
    peers = [name for name in args.peers.split(",") if name and name != "none"]
    if unknown := [name for name in peers if name not in PEERS]:
        p.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    skip = set(filter(None, args.skip.split(",")))
    if skip - {"style", "units"}:
        p.error(f"--skip takes style and/or units, not {args.skip}")

    info = device_info()
    print(f"# {info['host']} ({info['cpu']}), jax {info['jax']}, devices {info['devices']}", flush=True)
    records = []
    if "style" not in skip:
        network = vgg16(None)
        content = load_image("astronaut", shape=(args.size, args.size))
        style = load_image("hubble_deep_field", shape=(args.size, args.size))
        start = noise_image(jax.random.key(2), (args.size, args.size))
        before = load()
        records.append({**style_record(network, content, style, start, args.iterations), "load": before})
        print(json.dumps(records[-1]), flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "style.npz"
            params = network.variables["params"]
            np.savez(data, content=np.asarray(caffe_input(content)), style=np.asarray(caffe_input(style)),
                     start=np.asarray(caffe_input(start)),
                     **{f"{name}/{k}": np.asarray(v) for name, layer in params.items() for k, v in layer.items()})
            for impl in peers:
                before = load()
                if (r := run_peer(impl, args.peer_python, data, args.iterations)) is not None:
                    records.append({**r, "load": before})
                    print(json.dumps(records[-1]), flush=True)
    if "units" not in skip:
        before = load()
        records.append({"impl": "jaxcv-units", **units_record(args.units, args.unit_size, args.unit_steps),
                        "load": before})
        print(json.dumps(records[-1]), flush=True)

    style_rows = [(r["impl"], f"{r['iteration_seconds']:.2f}",
                   f"{r['iteration_seconds'] / records[0]['iteration_seconds']:.2f}",
                   f"{np.mean(r['evaluations']):.1f}", f"{r['initial_loss']:.6g}", f"{r['losses'][-1]:.6g}",
                   f"{r['compile_seconds']:.1f}" if "compile_seconds" in r else "-", f"{r['load']:.1f}")
                  for r in records if "iteration_seconds" in r]
    tables = []
    if style_rows:
        tables.append(f"Style at {args.size}x{args.size}, {args.iterations} iterations\n\n" + markdown_table(
            ["impl", "s / iteration", "÷ jaxcv", "evaluations / iteration", "initial loss", "final loss",
             "compile s", "load"], style_rows))
    tables += [f"{r['units']} units of conv5_1 at {r['size']} px, {r['steps']} steps\n\n" + markdown_table(
        ["one call s", f"{r['units']} calls s", "speed-up", "compile s", "load"],
        [(f"{r['one_call_seconds']:.2f}", f"{r['separate_calls_seconds']:.2f}", f"{r['speedup']:.1f}×",
          f"{r['compile_seconds']:.1f}", f"{r['load']:.1f}")]) for r in records if r["impl"] == "jaxcv-units"]
    text = "\n\n".join(tables)
    print(text)
    path = args.json or Path(__file__).parent / "results" / f"style-{info['host']}-{datetime.date.today()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": info, "records": records}, indent=1))
    path.with_suffix(".md").write_text(f"{info['host']} ({info['cpu']}), jax {info['jax']}, "
                                       f"devices {', '.join(info['devices'])}\n\n{text}\n")
    print(f"wrote {path} (.md)")


if __name__ == "__main__":
    with one_line_usage_errors():
        main()
