"""How the cost of a training epoch grows: with batch size, with data, with devices.

Three sweeps of one model's steady-state epoch (whole epoch as one compiled scan, median of
``--repeats`` after a warm-up, synthetic data):

- batch size 16 ... 1024 at a fixed number of examples: seconds per example should stay flat
  (or fall) until the device is full;
- dataset size ¼, ½, 1, 2 × ``--examples`` at batch ``--batch-size``: seconds should grow
  linearly with data;
- device count 1, 2, 4, 8, the batch split over them: real GPUs when there are several,
  otherwise simulated CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``, one
  process each).  Simulated devices share the host's cores, so on a CPU this measures the
  overhead of splitting, not a speedup;
- processes × devices each, 1×4, 2×2, 4×1 (the same 4 devices, the batch split over them):
  a multi-process job on this machine (``jax.distributed`` over loopback, gloo collectives
  between processes), so the price of crossing processes shows against one process.  Launched
  on a cluster as a job of several processes (``srun``, ``mpirun``), the benchmark times only
  that job's layout, over the real hosts.

Writes ``benchmarks/results/<host>-<date>-scaling.json`` (or ``--json PATH``): a list of
records with a ``sweep`` field, and beside it the tables (``.md``) and one plot per sweep.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxcv.bench import WORKLOADS, available_workloads, device_info, load, synthetic_task, time_epochs  # noqa: E402
from jaxcv.errors import UsageError, one_line_usage_errors  # noqa: E402
from jaxcv.experiment import output_file, positive_int, positive_ints  # noqa: E402
from jaxcv.local_cluster import run_processes  # noqa: E402
from jaxcv.models import get_model  # noqa: E402
from jaxcv.train import maybe_initialize_distributed  # noqa: E402
from jaxcv.viz import markdown_table, plot_lines  # noqa: E402

BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)
FRACTIONS = (0.25, 0.5, 1.0, 2.0)
DEVICE_COUNTS = (1, 2, 4, 8)
LAYOUTS = ((1, 4), (2, 2), (4, 1))
QUICK = {"examples": 1024, "batch_sizes": (32, 128, 512), "device_counts": (1, 2), "repeats": 1}
JOB_TIMEOUT = 1800  # seconds for one simulated job, its processes killed past it


def layouts(text: str) -> tuple[tuple[int, int], ...]:
    """argparse type: comma-separated ``PROCESSESxDEVICES``, e.g. ``1x4,2x2``."""
    try:
        return tuple((positive_int(a), positive_int(b)) for a, b in (t.lower().split("x") for t in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layouts such as 1x4,2x2,4x1, got {text!r}") from None


def measure(name: str, examples: int, batch_size: int, repeats: int, devices: list[jax.Device]) -> dict:
    """One timed epoch configuration as a record."""
    workload = WORKLOADS[name]
    model = get_model(name)
    data, loss_fn = synthetic_task(model, workload.shape, examples, workload.task)
    before = load()
    r = time_epochs(model, data, devices, batch_size=batch_size, repeats=repeats, loss_fn=loss_fn)
    return {"model": name, "impl": "jaxcv-scan", "device": f"{devices[0].platform}:{devices[0].device_kind}",
            "batch_size": batch_size, "processes": jax.process_count(), **r, "microseconds_per_image": 1e6 * r["epoch_seconds"] / r["examples"],
            "load": before}


def simulated(name: str, processes: int, devices: int, examples: int, batch_size: int, repeats: int) -> dict:
    """``measure`` on ``processes`` × ``devices`` simulated CPU devices: a job of its own on this
    machine, whose process 0 reports."""
    argv = [sys.executable, __file__, "--model", name, "--examples", str(examples), "--batch-size", str(batch_size),
            "--repeats", str(repeats), "--child-devices", str(processes * devices)]
    done = run_processes(argv, processes, devices, timeout=JOB_TIMEOUT)
    if failed := [i for i, p in enumerate(done) if p.returncode != 0]:
        raise RuntimeError(f"the {processes} x {devices}-device job failed (process {failed[0]}):\n"
                           f"{done[failed[0]].stderr[-3000:]}")
    return json.loads(done[0].stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mnist_cnn", help=f"one of {', '.join(WORKLOADS)}")
    p.add_argument("--examples", type=positive_int, default=None, help="examples in one epoch (default 8192)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="batch of the data and device sweeps")
    p.add_argument("--batch-sizes", type=positive_ints, default=None, help=f"default {','.join(map(str, BATCH_SIZES))}")
    p.add_argument("--device-counts", type=positive_ints, default=None,
                   help=f"default {','.join(map(str, DEVICE_COUNTS))}")
    p.add_argument("--layouts", type=layouts, default=LAYOUTS,
                   help=f"processes x devices each; default {','.join(f'{a}x{b}' for a, b in LAYOUTS)}")
    p.add_argument("--repeats", type=positive_int, default=None, help="timed epochs per point (median; default 3)")
    p.add_argument("--quick", action="store_true", help="a smoke run: few examples, batch sizes and devices")
    p.add_argument("--json", type=output_file, default=None, help="where to write the records (.md, .png beside it)")
    p.add_argument("--child-devices", type=positive_int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    maybe_initialize_distributed()
    try:
        found, absent = available_workloads([args.model])
    except UsageError as e:
        p.error(str(e))
    if absent:
        p.error(f"{args.model} is not in jaxcv's model registry")
    pick = lambda value, key, default: value or (QUICK[key] if args.quick else default)  # noqa: E731
    examples = pick(args.examples, "examples", 8192)
    batch_sizes = pick(args.batch_sizes, "batch_sizes", BATCH_SIZES)
    counts = pick(args.device_counts, "device_counts", DEVICE_COUNTS)
    repeats = pick(args.repeats, "repeats", 3)
    if args.child_devices or jax.process_count() > 1:  # a simulated job's process, or a cluster job's
        r = measure(args.model, examples, args.batch_size, repeats, jax.devices()[: args.child_devices])
        if jax.process_index() == 0:
            print(json.dumps({"sweep": "processes", **r, "layout": f"{r['processes']}x{r['devices'] // r['processes']}"}))
        return

    info = device_info()
    print(f"# {info['host']} ({info['cpu']}), jax {info['jax']}, devices {info['devices']}", flush=True)
    device = jax.devices()[0]
    records = []

    def add(sweep: str, r: dict) -> None:
        records.append({**r, "sweep": sweep})
        print(f"{sweep:10s} batch {r['batch_size']:5d} examples {r['examples']:7d} devices {r['devices']} "
              f"processes {r.get('processes', 1)}: "
              f"{r['epoch_seconds']:8.3f} s/epoch {r['microseconds_per_image']:8.1f} µs/image", flush=True)

    for b in batch_sizes:
        add("batch_size", measure(args.model, max(examples, b), b, repeats, [device]))
    for f in FRACTIONS:
        add("examples", measure(args.model, max(int(f * examples), args.batch_size), args.batch_size, repeats, [device]))
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    for count in counts:
        if args.batch_size % count:
            print(f"skipping {count} devices: batch {args.batch_size} does not split over them")
        elif len(gpus) > 1:
            if count <= len(gpus):
                add("devices", measure(args.model, examples, args.batch_size, repeats, gpus[:count]))
        else:
            add("devices", simulated(args.model, 1, count, examples, args.batch_size, repeats))
    for processes, devices in args.layouts:
        if args.batch_size % (processes * devices):
            print(f"skipping {processes}x{devices}: batch {args.batch_size} does not split over them")
        else:
            add("processes", simulated(args.model, processes, devices, examples, args.batch_size, repeats))

    path = args.json or Path(__file__).parent / "results" / f"{info['host']}-{datetime.date.today()}-scaling.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**r, "machine": {k: info[k] for k in ("host", "cpu", "jax")}} for r in records],
                               indent=1))
    what = "real GPUs" if len(gpus) > 1 else "simulated CPU devices sharing the host's cores"
    axes = {"batch_size": ("batch size", "batch_size"), "examples": ("examples per epoch", "examples"),
            "devices": (f"devices ({what})", "devices"),
            "processes": ("processes x devices (simulated CPU devices, one machine)", "layout")}
    sections = [f"{args.model} on {info['host']} ({info['cpu']}), jax {info['jax']}, median of {repeats} epoch(s)"]
    for sweep, (label, key) in axes.items():
        rows = [r for r in records if r["sweep"] == sweep]
        if not rows:
            continue
        sections.append(markdown_table(
            [label, "examples", "s / epoch", "images / s", "µs / image", "compile s", "load"],
            [(r[key], r["examples"], f"{r['epoch_seconds']:.3f}", f"{r['images_per_second']:,.0f}",
              f"{r['microseconds_per_image']:.1f}", f"{r['compile_seconds']:.1f}",
              f"{r['load']:.1f}" if r["load"] is not None else "-") for r in rows]))
        if sweep == "processes":  # categorical layouts: the table says it
            continue
        y = "epoch_seconds" if sweep == "examples" else "microseconds_per_image"
        plot_lines({args.model: ([r[key] for r in rows], [r[y] for r in rows])},
                   path.with_name(f"{path.stem}-{sweep}.png"), xlabel=label, logx=sweep != "examples",
                   ylabel="seconds per epoch" if sweep == "examples" else "µs per training image",
                   title=f"{args.model}: cost against {label.split(' (')[0]}")
    path.with_suffix(".md").write_text("\n\n".join(sections) + "\n")
    print("\n\n".join(sections[1:]))
    print(f"wrote {path} (.md, -batch_size/-examples/-devices .png)")


if __name__ == "__main__":
    with one_line_usage_errors():
        main()
