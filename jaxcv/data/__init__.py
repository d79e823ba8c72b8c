"""Datasets: TFDS pipelines, the embedded generated sets, and on-device augmentation."""

from jaxcv.data.augment import Augment

from jaxcv.data.pipeline import (CATALOGUED, EMBEDDED, Arrays, DataUnavailableError,
                                 load_split, num_classes, prepared_builder, stream)
from jaxcv.data.tasks import denoise_pairs, sort_vertices, vertex_targets

__all__ = ["Augment", "CATALOGUED", "EMBEDDED", "Arrays", "DataUnavailableError", "load_split",
           "num_classes", "prepared_builder", "stream",
           "denoise_pairs", "sort_vertices", "vertex_targets"]
