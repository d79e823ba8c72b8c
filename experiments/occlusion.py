"""Occlusion sensitivity, saliency and Grad-CAM (report 001's "local classification"; Zeiler &
Fergus 2014): for a grid of test images, the probability of the true class as a patch of the
training set's mean grey slides over the image, and which pixels the class score depends on.

On shapes/easy and shapes/hard, whose shapes are known from how they are drawn, the summary
gives how often the most damaging patch touches the shape, over the correctly classified
images among the first --measure test images, beside how often a patch anywhere does.
--from inspects a classifier an earlier study trained; without it, one is trained here first
(shapes_deep_cnn on the shapes, mnist_cnn on other grey images, cifar_cnn on colour ones).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxcv import experiment, inspection, runs
from jaxcv.data.shapes import shape_mask
from jaxcv.viz import markdown_table
from jaxcv.viz.inspection import plot_attributions, plot_occlusion

STUDY = "occlusion"
MASKED = ("shapes/easy", "shapes/hard")
"""Datasets whose shapes' pixels ``shape_mask`` knows."""


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="shapes/hard", epochs=3, batch_size=32, seeds=1, optimizer="adam",
                          lr=1e-3, examples=16)
    runs.add_source_options(p)
    p.add_control("--patch", type=experiment.positive_int, default=None,
                  help="patch side in pixels (default: about 2/9 of the image side)")
    p.add_control("--stride", type=experiment.positive_int, default=None,
                  help="pixels between patch positions (default: a third of the patch)")
    p.add_control("--layer", default=None, help="conv layer of the Grad-CAM maps (default: the model's last)")
    p.add_control("--measure", type=experiment.positive_int, default=256,
                  help="test images over which the on-shape rate is measured (shapes/easy, shapes/hard)")
    study = experiment.Study(STUDY, p, argv)
    args = study.args

    def patch_and_stride(image_shape):
        patch = args.patch or max(2, round(min(image_shape[1:3]) * 2 / 9))
        return patch, args.stride or max(1, patch // 3)

    def check(model, test):
        inspection.check_patch(test["image"].shape, *patch_and_stride(test["image"].shape))
        inspection.check_layers(model, test["image"], conv_layer=args.layer)

    dataset, train, test, model, trained = runs.inspected_run(study, check)
    variables = trained.variables
    patch, stride = patch_and_stride(test["image"].shape)
    fill = train["image"].reshape(-1, train["image"].shape[-1]).mean(0) / 255  # Zeiler & Fergus' grey

    n = min(len(test["label"]), max(args.examples, args.measure if dataset in MASKED else 0))
    images, labels = test["image"][:n], test["label"][:n]
    maps = inspection.occlusion(model, variables, images, labels, patch=patch, stride=stride, fill=fill)
    predicted = np.asarray(inspection.probabilities(model, variables, images)).argmax(-1)
    true_prob, clear = np.asarray(maps.true_prob), np.asarray(maps.clear_prob)
    worst = np.asarray(inspection.worst_patches(maps.true_prob, stride))
    k = min(args.examples, n)
    where = f"{type(model).__name__} on {dataset}"
    plot_occlusion(images[:k], true_prob[:k], study.figure("occlusion"), patch=patch, stride=stride,
                   titles=[f"{labels[i]}→{predicted[i]} p={clear[i]:.2f} min {true_prob[i].min():.2f}"
                           for i in range(k)],
                   title=f"{where}: occlusion, patch {patch}, stride {stride}")
    layer = args.layer or inspection.conv_layers(variables)[-1]
    shown = min(k, 8)
    few, few_labels = images[:shown], labels[:shown]
    plot_attributions(few, {"saliency": inspection.saliency(model, variables, few, few_labels),
                            f"Grad-CAM {layer}": inspection.grad_cam(model, variables, few, few_labels, layer=layer)},
                      study.figure("attributions"), titles=[f"label {y}" for y in few_labels],
                      title=f"{where}: what the true class's score depends on")

    rows = [(i, labels[i], predicted[i], f"{clear[i]:.3f}", f"{true_prob[i].min():.3f}",
             f"{clear[i] - true_prob[i].min():.3f}", f"({worst[i][0]}, {worst[i][1]})") for i in range(k)]
    table = markdown_table(["test image", "label", "predicted", "p(label)", "lowest p(label) occluded", "drop",
                            "worst patch (row, col)"], rows)
    results = {"model": type(model).__name__, "run": str(trained.run_dir), "variant": trained.variant,
               "seed": trained.seed, "epoch": trained.epoch, "patch": patch, "stride": stride,
               "fill": fill.tolist(), "grad_cam_layer": layer,
               "images": [{"label": int(labels[i]), "predicted": int(predicted[i]), "clear_prob": float(clear[i]),
                           "true_prob": true_prob[i].tolist(), "worst_patch": worst[i].tolist()} for i in range(k)]}
    shape_text = ""
    if dataset in MASKED:
        touches = np.asarray(inspection.patch_coverage(shape_mask(images), patch=patch, stride=stride)) > 0
        rows_at, cols_at = worst[:, 0] // stride, worst[:, 1] // stride
        on_shape = touches[np.arange(n), rows_at, cols_at]
        correct = predicted == labels
        results["on_shape"] = {"images": n, "correct": int(correct.sum()),
                               "worst_patch_on_shape": float(on_shape[correct].mean()) if correct.any() else None,
                               "any_patch_on_shape": float(touches[correct].mean()) if correct.any() else None}
        rate = results["on_shape"]
        shape_text = (f"\n\n## Does the most damaging patch lie on the shape?\n\nOf the first {n} test images, "
                      f"{rate['correct']} are classified correctly; for "
                      + (f"{rate['worst_patch_on_shape']:.1%} of them the patch that lowers p(label) most touches "
                         f"the shape, where {rate['any_patch_on_shape']:.1%} of all patch positions do."
                         if correct.any() else "none of them, as none is correct.") + "\n")
        print(f"worst patch on the shape: {rate['worst_patch_on_shape']}, any patch: {rate['any_patch_on_shape']} "
              f"({rate['correct']} correct of {n})")
    print(table)
    study.write_results("results", results)
    study.write_summary(
        f"# Occlusion, saliency and Grad-CAM of {type(model).__name__} on {dataset}\n\nVariant `{trained.variant}` "
        f"seed {trained.seed} of `{trained.run_dir}` after epoch {trained.epoch}.  A {patch}x{patch} patch of the "
        f"training set's mean ({', '.join(f'{v:.3f}' for v in fill)}) at a stride of {stride} pixels; p(label) is the "
        f"softmax probability of the true class.\n\n{table}{shape_text}\n\n![occlusion](occlusion.png)\n\n"
        f"![attributions](attributions.png)\n")


if __name__ == "__main__":
    experiment.main(run)
