"""Steady-state seconds per training epoch of the study models on every device kind present.

For each model and device kind (CPU always, GPU when JAX sees one) it times a whole epoch
as one compiled ``lax.scan`` (jaxcv's path) and, with ``--modes scan,loop``, a Python loop
over a compiled step for comparison.  Compile time is reported apart; epochs are medians
of ``--repeats`` runs after a warm-up, blocked on their results.  Synthetic data.

Writes ``benchmarks/results/<host>-<date>.json`` (or ``--json PATH``) and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxcv.bench import device_info, synthetic, time_epochs  # noqa: E402
from jaxcv.experiment import positive_int  # noqa: E402
from jaxcv.models import get_model  # noqa: E402
from jaxcv.models.layers import conv_impl_for  # noqa: E402
from jaxcv.viz import markdown_table  # noqa: E402

MODELS = {  # name: (input shape, examples in one real epoch)
    "mnist_cnn": ((28, 28, 1), 60_000),
    "cifar_cnn": ((32, 32, 3), 50_000),
    "cifar_cnn_bn": ((32, 32, 3), 50_000),
}


def device_kinds() -> dict[str, jax.Device]:
    """One device of each platform JAX can use here."""
    kinds = {}
    for platform in ("cpu", "gpu"):
        try:
            kinds[platform] = jax.devices(platform)[0]
        except RuntimeError:
            pass
    return kinds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--modes", default="scan", help="comma-separated: scan (whole epoch compiled), loop (step loop)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--examples", type=positive_int, default=None,
                   help="examples per epoch (default: the real dataset's, 60,000 / 50,000)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed epochs per measurement (median)")
    p.add_argument("--json", type=Path, default=None, help="where to write the records")
    args = p.parse_args()
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")

    info = device_info()
    print(f"# {info['host']} ({info['cpu']}), jax {info['jax']}, devices {info['devices']}")
    records = []
    for platform, device in device_kinds().items():
        for name in models:
            shape, real_n = MODELS[name]
            data = synthetic(shape, args.examples or real_n)
            model = get_model(name, impl=conv_impl_for(platform))
            for mode in args.modes.split(","):
                r = time_epochs(model, data, device, batch_size=args.batch_size, mode=mode, repeats=args.repeats)
                record = {"model": name, "impl": f"jaxcv-{mode}", "device": f"{platform}:{device.device_kind}",
                          "batch_size": args.batch_size, **r}
                records.append(record)
                print(f"{name:14s} {platform} {mode:5s} {r['epoch_seconds']:8.2f} s/epoch  "
                      f"{r['images_per_second']:9.0f} img/s  compile {r['compile_seconds']:.1f} s", flush=True)

    rows = [(r["model"], r["impl"], r["device"], r["examples"], f"{r['epoch_seconds']:.2f}",
             f"{r['images_per_second']:.0f}", f"{r['compile_seconds']:.1f}",
             f"{r['flop_per_second'] / 1e9:.1f}" if r["flop_per_second"] else "-") for r in records]
    print(markdown_table(["model", "impl", "device", "examples", "s / epoch", "images / s", "compile s",
                          "GFLOP/s"], rows))
    path = args.json or Path(__file__).parent / "results" / f"{info['host']}-{datetime.date.today()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": info, "records": records}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
