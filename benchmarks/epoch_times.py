"""Steady-state seconds per training epoch of the study models, CPU against GPU, jaxcv against peers.

For each model (``jaxcv.bench.WORKLOADS``) and device kind (CPU always, GPU when JAX sees
one) it times a training epoch as ``fit`` runs it, once per ``--modes`` entry: an execution
setting of ``jaxcv.train.autotune`` (``im2col/scan``, ``xla/unroll8`` ..., or ``auto``: the
autotune's pick, measured now or read from its cache, with its per-step timings of every
candidate), and per ``--precision``.  Compile time is apart; epochs are medians of
``--repeats`` runs after a warm-up, blocked on their results; achieved FLOP/s come from XLA's
cost analysis, and the fraction of peak where the device's peak is known.  Synthetic data.

``--peers torch,keras`` times the same ``mnist_cnn`` / ``cifar_cnn`` (same layers, parameter
counts, batch size and data) in PyTorch eager and Keras 3 ``fit`` (JAX and TensorFlow
backends), each in its own process, on the CPU, in the same run; ``--peer-python`` runs them
with another interpreter (one that has torch when jaxcv's has none).  ``--rounds R`` measures
jaxcv and the peers in turn R times, so that a machine that drifts during the run slows both
alike: the table shows each implementation's median round, and a second table each peer's time
over the fastest jaxcv time of the same round, round by round.

Writes ``benchmarks/results/<host>-<date>.json`` (or ``--json PATH``): a list of records,
and next to it the markdown table (``.md``) and a bar chart of images/s (``.png``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxcv.bench import WORKLOADS, available_workloads, device_info, load, synthetic_task, time_epochs  # noqa: E402
from jaxcv.errors import UsageError, one_line_usage_errors  # noqa: E402
from jaxcv.experiment import output_file, positive_int, program  # noqa: E402
from jaxcv.models import get_model  # noqa: E402
from jaxcv.train.autotune import parse_setting  # noqa: E402
from jaxcv.train.steps import compute_dtype  # noqa: E402
from jaxcv.viz import markdown_table, plot_bars  # noqa: E402

PEERS_DIR = Path(__file__).resolve().parent / "peers"
# impl: (script, environment, extra arguments, modules it needs)
PEERS = {
    "torch": ("torch_cnn.py", {"CUDA_VISIBLE_DEVICES": ""}, [], ["torch"]),
    "torch-channels-last": ("torch_cnn.py", {"CUDA_VISIBLE_DEVICES": ""}, ["--channels-last"], ["torch"]),
    "keras-jax": ("keras_cnn.py", {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}, [], ["keras", "jax"]),
    "keras-tf": ("keras_cnn.py", {"KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": ""}, [],
                 ["keras", "tensorflow"]),
}
PEER_ALIASES = {"keras": ["keras-jax", "keras-tf"]}
PEER_MODELS = ("mnist_cnn", "cifar_cnn", "cifar_cnn_bn")
QUICK = {"models": "mnist_cnn,cifar_cnn", "examples": 1024, "repeats": 2}


def device_kinds() -> dict[str, jax.Device]:
    """One device of each platform JAX can use here."""
    kinds = {}
    for platform in ("cpu", "gpu"):
        try:
            kinds[platform] = jax.devices(platform)[0]
        except RuntimeError:
            pass
    return kinds


def peer_impls(text: str) -> list[str]:
    """``--peers`` expanded (``keras`` is both backends); unknown names are an error."""
    impls = [i for name in text.split(",") if name for i in PEER_ALIASES.get(name, [name])]
    if unknown := [i for i in impls if i not in PEERS]:
        raise UsageError(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join([*PEERS, *PEER_ALIASES])}")
    return impls


def run_peer(impl: str, model: str, data: dict[str, np.ndarray], batch_size: int, repeats: int,
             python: str | None = None) -> dict | None:
    """Time ``model`` in peer ``impl`` in its own process (run by ``python``, default this
    interpreter); ``None`` (with a note) if it cannot run."""
    script, env, extra, modules = PEERS[impl]
    missing = [m for m in modules if importlib.util.find_spec(m) is None] if python is None else []
    if missing:
        print(f"skipping {impl}: {', '.join(missing)} not installed (pip install 'jaxcv[peers]', "
              f"or --peer-python an interpreter that has them)", flush=True)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **data)
        proc = subprocess.run([python or sys.executable, str(PEERS_DIR / script), str(path), model, str(batch_size),
                               str(repeats), *extra], capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        print(f"skipping {impl} {model}: it failed:\n{proc.stderr[-2000:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_rounds(records: list[dict]) -> list[dict]:
    """One record per model, implementation and device: of its rounds, the one of median epoch
    time (the lower middle one of an even count), with every round's epoch seconds beside it
    (``round_seconds``)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["model"], r["impl"], r["device"]), []).append(r)
    merged = []
    for group in groups.values():
        ranked = sorted(group, key=lambda r: r["epoch_seconds"])
        merged.append({**ranked[(len(ranked) - 1) // 2], "round_seconds": [r["epoch_seconds"] for r in group]})
    return merged


def fastest_jaxcv(records: list[dict], model: str, round_: int | None = None) -> dict | None:
    """The fastest float32 jaxcv CPU record of ``model``, in round ``round_`` (any for ``None``)."""
    return min((r for r in records if r["model"] == model and r["impl"].startswith("jaxcv")
                and r["device"].startswith("cpu") and r.get("precision", "float32") == "float32"
                and round_ in (None, r.get("round", 0))), key=lambda r: r["epoch_seconds"], default=None)


def ratio_table(records: list[dict]) -> str:
    """Per model and peer: its epoch time over the fastest float32 jaxcv CPU epoch time of the
    same round, every round and their median (below 1: the peer is faster)."""
    rows = []
    peers = dict.fromkeys((r["model"], r["impl"]) for r in records if not r["impl"].startswith("jaxcv"))
    for model, impl in peers:
        ratios = [r["epoch_seconds"] / ref["epoch_seconds"] for r in records
                  if (r["model"], r["impl"]) == (model, impl) and (ref := fastest_jaxcv(records, model, r.get("round", 0)))]
        if ratios:
            rows.append((model, impl, ", ".join(f"{q:.2f}" for q in ratios), f"{np.median(ratios):.2f}"))
    return markdown_table(["model", "peer", "peer time ÷ fastest jaxcv time, each round", "median"], rows)


def summary_table(records: list[dict]) -> str:
    """One row per model and implementation: CPU and GPU side by side, GPU speedup, and CPU
    time over the fastest float32 jaxcv execution's on the CPU."""
    by_key: dict[tuple[str, str], dict[str, dict]] = {}
    for r in records:
        by_key.setdefault((r["model"], r["impl"]), {})[r["device"].split(":")[0]] = r

    def cell(r: dict | None, key: str, fmt: str, scale: float = 1.0) -> str:
        return format(r[key] / scale, fmt) if r and r.get(key) is not None else "-"

    def execution(r: dict | None) -> str:
        return f"{r['execution']['execution']} ({r['execution']['source']})" if r and "execution" in r else "-"

    rows = []
    for (model, impl), d in by_key.items():
        cpu, gpu = d.get("cpu"), d.get("gpu")
        ref = fastest_jaxcv(records, model)
        rows.append((model, impl, " / ".join(execution(r) for r in (cpu, gpu) if r),
                     cpu["examples"] if cpu else gpu["examples"], cpu["batch_size"] if cpu else gpu["batch_size"],
                     cell(cpu, "epoch_seconds", ".2f"), cell(cpu, "images_per_second", ",.0f"),
                     cell(gpu, "epoch_seconds", ".3f"), cell(gpu, "images_per_second", ",.0f"),
                     f"{cpu['epoch_seconds'] / gpu['epoch_seconds']:.1f}×" if cpu and gpu else "-",
                     f"{cpu['epoch_seconds'] / ref['epoch_seconds']:.2f}" if cpu and ref else "-",
                     " / ".join(cell(r, "compile_seconds", ".1f") for r in (cpu, gpu) if r),
                     " / ".join(cell(r, "flop_per_second", ".1f", 1e9) for r in (cpu, gpu) if r),
                     cell(gpu, "fraction_of_peak", ".1%"),
                     cell(cpu, "load", ".1f")))
    return markdown_table(["model", "impl", "execution (CPU / GPU)", "examples", "batch", "CPU s / epoch",
                           "CPU images / s", "GPU s / epoch", "GPU images / s", "GPU speedup",
                           "CPU time ÷ fastest jaxcv", "compile s (CPU / GPU)", "GFLOP/s (CPU / GPU)",
                           "GPU % of peak", "load"], rows)


def autotune_table(records: list[dict]) -> str:
    """Why the autotune picked what it did: per model and device, every candidate's measured
    milliseconds per step (its compile seconds apart), the pick first in bold."""
    rows = []
    for r in records:
        tuned = r.get("execution", {})
        if not tuned.get("seconds_per_step"):
            continue
        ranked = sorted(tuned["seconds_per_step"].items(), key=lambda kv: kv[1])
        cells = [f"{'**' if c == tuned['execution'] else ''}{c}: {s * 1e3:.1f} ms"
                 f"{'**' if c == tuned['execution'] else ''} ({tuned['compile_seconds'][c]:.1f} s compile)"
                 for c, s in ranked]
        rows.append((r["model"], r["device"].split(":")[0], r.get("precision", "float32"), tuned["source"],
                     "; ".join(cells)))
    return markdown_table(["model", "device", "precision", "source", "ms per step by candidate (fastest first)"],
                          rows) if rows else ""


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)")
    p.add_argument("--modes", default="default",
                   help="comma-separated execution settings: default (fit's), auto (the autotune's pick), or "
                        "FORMULATION/DRIVER with "
                        "FORMULATION im2col, xla or xla_chunked and DRIVER scan or unrollK (K steps per compiled call) "
                        "over a training set on the device, or stream or streamK (K host batches per compiled call)")
    p.add_argument("--precision", default="float32", help="comma-separated, from float32, bf16")
    p.add_argument("--peers", default="", help=f"comma-separated, from {', '.join([*PEERS, *PEER_ALIASES])} "
                                                f"(on the CPU, for {', '.join(PEER_MODELS)})")
    p.add_argument("--peer-python", type=program, default=None,
                   help="interpreter to run the peers with (default: this one), e.g. a venv with torch")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--examples", type=positive_int, default=None,
                   help="examples per epoch (default: the real dataset's, e.g. 60,000 for MNIST)")
    p.add_argument("--repeats", type=positive_int, default=None, help="timed epochs per measurement (median; default 3)")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="measure jaxcv and the peers in turn this many times per model (the median round is shown)")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run in about a minute: {QUICK['models']} unless --models, "
                        f"{QUICK['examples']} examples, {QUICK['repeats']} repeats")
    p.add_argument("--json", type=output_file, default=None,
                   help="where to write the records (.md and .png go beside it)")
    args = p.parse_args(argv)
    try:
        models, absent = available_workloads((args.models or (QUICK["models"] if args.quick else ",".join(WORKLOADS)))
                                             .split(","))
        peers = peer_impls(args.peers)
        modes, precisions = args.modes.split(","), args.precision.split(",")
        for mode in modes:
            parse_setting(mode)
        for precision in precisions:
            compute_dtype(precision)
    except UsageError as e:
        p.error(str(e))
    examples = args.examples or (QUICK["examples"] if args.quick else None)
    # what would fail only after minutes of timing, or be skipped without a word, refused now
    if short := {n: count for n in models if (count := examples or WORKLOADS[n].examples) < args.batch_size}:
        p.error(f"--batch-size {args.batch_size} is more than an epoch's examples: "
                + ", ".join(f"{n} {count:,}" for n, count in short.items()))
    if peers and not set(models) & set(PEER_MODELS):
        p.error(f"the peers time {', '.join(PEER_MODELS)} only, none of which --models names")
    repeats = args.repeats or (QUICK["repeats"] if args.quick else 3)
    for name in absent:
        print(f"skipping {name}: not in jaxcv's model registry yet")

    info = device_info()
    print(f"# {info['host']} ({info['cpu']}), jax {info['jax']}, devices {info['devices']}", flush=True)
    machine = {k: info[k] for k in ("host", "cpu", "jax")}
    records, kinds = [], device_kinds()
    for name in models:
        workload, model = WORKLOADS[name], get_model(name)
        tasks = {platform: synthetic_task(model, workload.shape, examples or workload.examples, workload.task)
                 for platform in kinds}
        for round_ in range(args.rounds):
            for platform, device in kinds.items():
                data, loss_fn = tasks[platform]
                for mode, precision in itertools.product(modes, precisions):
                    before = load()
                    r = time_epochs(model, data, device, batch_size=args.batch_size, execution=mode, repeats=repeats,
                                    loss_fn=loss_fn, precision=precision)
                    impl = f"jaxcv-{mode}" + ("" if precision == "float32" else f"-{precision}")
                    records.append({"model": name, "impl": impl, "device": f"{platform}:{device.device_kind}",
                                    "batch_size": args.batch_size, **r, "load": before, "machine": machine,
                                    "round": round_})
                    print(f"{name:18s} {impl:24s} {platform} {r['epoch_seconds']:8.3f} s/epoch "
                          f"{r['images_per_second']:9.0f} img/s  compile {r['compile_seconds']:.1f} s"
                          f"  ({r['execution']['execution']}, {r['execution']['source']})", flush=True)
            if name not in PEER_MODELS:
                continue
            jaxcv_cpu = fastest_jaxcv(records, name, round_)
            for impl in peers:
                before = load()
                r = run_peer(impl, name, tasks["cpu"][0], args.batch_size, repeats, args.peer_python)
                if r is None:
                    continue
                records.append({**r, "load": before, "machine": machine, "round": round_})
                print(f"{name:18s} {impl:20s} cpu {r['epoch_seconds']:8.3f} s/epoch {r['images_per_second']:9.0f} img/s"
                      + (f"  {r['epoch_seconds'] / jaxcv_cpu['epoch_seconds']:.2f}× the fastest jaxcv's time"
                         f" (params {r['params']:,} vs {jaxcv_cpu['params']:,})" if jaxcv_cpu else ""), flush=True)

    medians = median_rounds(records)
    table = summary_table(medians)
    if args.rounds > 1 and peers:
        table += f"\n\nRound by round ({args.rounds} rounds, jaxcv and the peers in turn):\n\n" + ratio_table(records)
    if tuned := autotune_table(medians):
        table += "\n\nThe autotune's measurements (a few steps per candidate, compile apart):\n\n" + tuned
    print(table)
    path = args.json or Path(__file__).parent / "results" / f"{info['host']}-{datetime.date.today()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1))
    header = (f"{info['host']} ({info['cpu']}), jax {info['jax']}, devices {', '.join(info['devices'])}; "
              f"batch {args.batch_size}, median of {repeats} epoch(s) after a warm-up"
              + (f", the median of {args.rounds} rounds" if args.rounds > 1 else "") + ", synthetic data\n\n")
    path.with_suffix(".md").write_text(header + table + "\n")
    groups: dict[str, dict[str, float]] = {}
    for r in medians:
        groups.setdefault(r["model"], {})[f"{r['impl']} ({r['device'].split(':')[0]})"] = r["images_per_second"]
    plot_bars(groups, path.with_suffix(".png"), ylabel="training images / s", logy=True,
              title=f"steady-state training throughput, batch {args.batch_size}")
    print(f"wrote {path} (.md, .png)")


if __name__ == "__main__":
    with one_line_usage_errors():
        main()
