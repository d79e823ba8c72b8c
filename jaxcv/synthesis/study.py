"""What the synthesis studies (activation maximisation, deep dream, neural style) share: the
pretrained VGG16 they optimise against and their inputs checked before the run folder is
touched."""

from __future__ import annotations

import argparse
from typing import Callable, Sequence, TypeVar

from jaxcv import experiment
from jaxcv.synthesis.network import CHECKOUT_WEIGHTS, Network, default_vgg16_weights, vgg16

Inputs = TypeVar("Inputs")


def add_weights_option(p: experiment.StudyParser) -> None:
    """``--weights``: the VGG16 file (or ``imagenet`` / ``hed``, looked up), defaulting to the
    offline one beside the checkout when present."""
    p.add_argument("--weights", default=default_vgg16_weights(),
                   help=f"VGG16 weights: a Keras VGG16 .h5 file (ImageNet), the HED file of {CHECKOUT_WEIGHTS.parent}, "
                        "or 'imagenet' / 'hed' (looked up in $JAXCV_WEIGHTS and Keras' cache)")


def open_study(name: str, parser: experiment.StudyParser, argv: Sequence[str] | None,
               prepare: Callable[[argparse.Namespace], Inputs]) -> tuple[experiment.Study, Inputs]:
    """The study's run folder and its inputs, prepared from the parsed options first: a missing
    image or weight file is a ``UsageError`` before anything is written."""
    inputs = prepare(parser.parse_args(argv))
    return experiment.Study(name, parser, argv), inputs


def network_for(args: argparse.Namespace, network: Network | None) -> tuple[Network, str]:
    """``network`` if given (tests pass a small one), else VGG16 from ``--weights``; and where
    its weights came from, for the summary."""
    if network is not None:
        return network, f"a given {type(network.model).__name__} (not --weights)"
    return vgg16(args.weights), f"VGG16 weights `{args.weights}`"
