"""Datasets (TFDS datasets stored as array_record, read without TensorFlow): whole splits as
uint8 arrays, Grain streaming, the embedded generated sets, the real datasets prepared from their
original files, image folders, task batches and on-device augmentation."""

from jaxcv.data.augment import Augment
from jaxcv.data.originals import DataUnavailableError
from jaxcv.data.pipeline import (CATALOGUED, EMBEDDED, Arrays, load_split, num_classes, prepare,
                                 prepared_builder)
from jaxcv.data.streaming import stream
from jaxcv.data.tasks import denoise_pairs, sort_vertices, vertex_targets

__all__ = ["Augment", "CATALOGUED", "EMBEDDED", "Arrays", "DataUnavailableError", "load_split",
           "num_classes", "prepare", "prepared_builder", "stream",
           "denoise_pairs", "sort_vertices", "vertex_targets"]
