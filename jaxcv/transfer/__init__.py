"""Transfer learning: pretrained weights into the backbones, new heads, feature extraction.
Freezing and fine-tuning stages live in ``jaxcv.train.freeze``."""

from jaxcv.transfer.features import extract_features, feature_model
from jaxcv.transfer.head import Head, head_of, merge_head, new_head
from jaxcv.transfer.start import warm_start
from jaxcv.transfer.weights import LoadReport, find_weights, load_weights, pretrained, weight_dirs

__all__ = ["extract_features", "feature_model", "Head", "head_of", "merge_head", "new_head", "LoadReport",
           "find_weights", "load_weights", "pretrained", "warm_start", "weight_dirs"]
