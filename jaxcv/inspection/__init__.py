"""Looking inside a trained network: filters, activations, embeddings, occlusion, saliency and
Grad-CAM, weight statistics.

Every function takes a model, its variables and images (uint8, or floats in [0, 1]) and returns
arrays, computed in one jit-compiled call batched over images, positions and units; figures are
drawn by ``jaxcv.viz``.  A layer is named as the model names it: a feature of its returned
``features`` dict (``conv1``, ``pool1``, ``fc1``) or a parameter path (``conv1``); an unknown
name is a ``UsageError`` listing the valid ones.
"""

from jaxcv.inspection.activations import activation_grid, activations
from jaxcv.inspection.attribution import grad_cam, input_gradients, saliency
from jaxcv.inspection.embeddings import check_embedding, features, knn_accuracy, tsne
from jaxcv.inspection.filters import FilterChange, filter_change, filter_grid
from jaxcv.inspection.grids import tile
from jaxcv.inspection.layers import check_layers, conv_kernel, conv_layers, probabilities
from jaxcv.inspection.occlusion import OcclusionMaps, check_patch, occlusion, patch_coverage, positions, worst_patches
from jaxcv.inspection.weights import Histogram, change_histograms, relative_change, weight_histograms

__all__ = ["activation_grid", "activations", "grad_cam", "input_gradients", "saliency", "features",
           "check_embedding", "knn_accuracy", "tsne", "FilterChange", "filter_change", "filter_grid", "tile",
           "check_layers", "conv_kernel", "conv_layers", "probabilities", "OcclusionMaps", "check_patch", "occlusion",
           "patch_coverage", "positions", "worst_patches", "Histogram", "change_histograms", "relative_change",
           "weight_histograms"]
