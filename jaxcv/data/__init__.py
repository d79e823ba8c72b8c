"""Datasets: TFDS pipelines, the embedded generated sets, and image conversion."""

from jaxcv.data.pipeline import (CATALOGUED, EMBEDDED, Arrays, DataUnavailableError,
                                 load_split, num_classes, prepared_builder, stream)

__all__ = ["CATALOGUED", "EMBEDDED", "Arrays", "DataUnavailableError", "load_split",
           "num_classes", "prepared_builder", "stream"]
