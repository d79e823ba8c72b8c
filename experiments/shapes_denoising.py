"""Denoising hourglass (report 004): an autoencoder of 32-filter 3x3 convs, three max-pools down
to 9x9, BatchNorm and three up-samplings back to 72x72, trained with binary cross-entropy to
map a noisy image of a moved, rotated square / circle / triangle to its clean twin.  Adam,
batch 128, as the report.

Writes the curves, one figure of test images in rows (noisy input, denoised, clean target)
and a table of test BCE and PSNR, beside the PSNR of the noisy input itself.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from jaxcv import experiment
from jaxcv.data import denoise_pairs
from jaxcv.models import count_params, get_model
from jaxcv.train import make_optimizer, predict, psnr, reconstruction
from jaxcv.viz import epoch_seconds, image_grid, markdown_table, mean_std, plot_runs

STUDY = "shapes_denoising"


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="shapes/denoise", epochs=20, batch_size=128, seeds=1,
                          optimizer="adam", lr=1e-3, examples=8)
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, _ = study.load_data()
    test = denoise_pairs(test)

    results = study.run("hourglass", get_model("hourglass"), denoise_pairs(train), test,
                        loss_fn=reconstruction, optimizer=make_optimizer(args.optimizer, args.lr))
    plot_runs({"hourglass": results}, study.figure("curves"), title=f"hourglass on {args.dataset}")

    noisy, clean = test["image"][: args.examples], test["target"][: args.examples]
    denoised = np.asarray(jax.nn.sigmoid(predict(results[0].state, noisy)))
    image_grid([*noisy, *denoised, *clean], study.figure("denoised"), rows=3, row_labels=["noisy", "denoised", "clean"],
               title="test images (seed 0)")

    noisy_psnr = float(np.mean(psnr(test["image"], test["target"])))
    final = [r.history[-1] for r in results]
    test_psnr = [e["val_psnr"] for e in final]
    table = markdown_table(
        ["model", "params", "test BCE", "test PSNR (dB)", "noisy input PSNR (dB)", "gain (dB)", "s / epoch / model"],
        [["hourglass", f"{count_params(results[0].state.params):,}", mean_std([e["val_loss"] for e in final], ".4f"),
          mean_std(test_psnr, ".2f"), f"{noisy_psnr:.2f}", mean_std([v - noisy_psnr for v in test_psnr], ".2f"),
          f"{epoch_seconds(results):.2f}"]])
    print(table)
    study.write_summary(
        f"# Denoising hourglass on {args.dataset}\n\nBCE, {args.optimizer} lr {args.lr}, batch {args.batch_size}, "
        f"{args.epochs} epochs, {args.seeds} seed(s) (mean ± std). PSNR is per test image, averaged; the "
        f"noisy input's is the noisy image against the clean one.\n\n{table}\n\n![curves](curves.png)\n\n"
        "![denoised](denoised.png)\n")


if __name__ == "__main__":
    experiment.main(run)
