"""Optimising the input of a fixed network: activation maximisation, deep dream, neural style.

``optimise(network, objective, images, settings)`` runs the whole loop as one compiled program
over a batch of images; objectives are weighted sums of small terms over named features.
"""

from jaxcv.synthesis.engine import Result, Settings, optimise, probe, score
from jaxcv.synthesis.network import Network, rgb_unit
from jaxcv.synthesis.objectives import (Activation, Content, LayerL2, Objective, Probe, Style, Term,
                                        gram_matrix)
from jaxcv.synthesis.optimisers import LBFGS, Adam, NormalisedGradient, Optimiser
from jaxcv.synthesis.regularisers import ImageL2, TotalVariation, gaussian_blur, l2, total_variation
from jaxcv.synthesis.transforms import Jitter

__all__ = ["optimise", "probe", "score", "Result", "Settings", "Network", "rgb_unit", "Objective", "Probe", "Term",
           "Activation", "LayerL2", "Content", "Style", "gram_matrix", "TotalVariation", "ImageL2",
           "total_variation", "l2", "gaussian_blur", "Jitter", "Optimiser", "NormalisedGradient", "Adam",
           "LBFGS"]
