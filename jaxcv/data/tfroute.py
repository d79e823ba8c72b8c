"""What still needs TensorFlow (the ``tf`` extra: ``pip install 'jaxcv[tf]'``): preparing TFDS
catalogue datasets other than jaxcv's own, and reading data dirs prepared as TFRecord.
TensorFlow is imported here only, when first needed, and kept off every GPU.
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np
import tensorflow_datasets as tfds

from jaxcv.data.originals import DataUnavailableError
from jaxcv.data.pipeline import CATALOGUED, EMBEDDED, Arrays, numeric


def tensorflow(purpose: str) -> ModuleType:
    """TensorFlow, hidden from every GPU; a ``DataUnavailableError`` saying what needed it
    when it is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    try:
        import tensorflow as tf
    except ImportError:
        raise DataUnavailableError(
            f"{purpose} needs TensorFlow, which is not installed: pip install 'jaxcv[tf]' (jaxcv's own "
            f"datasets need none: {', '.join((*CATALOGUED, *EMBEDDED))}, image_folder/<name>)") from None
    tf.config.set_visible_devices([], "GPU")
    return tf


def load_split(builder: tfds.core.DatasetBuilder, split: str) -> Arrays:
    """``pipeline.load_split`` of a dataset prepared as TFRecord, through ``tf.data``."""
    tensorflow(f"reading {builder.data_dir} (prepared as {builder.info.file_format.value})")
    chunks = [numeric(batch) for batch in tfds.as_numpy(builder.as_dataset(split=split).batch(8192))]
    if not chunks:
        raise DataUnavailableError(f"split {split!r} of {builder.data_dir} is empty")
    return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
