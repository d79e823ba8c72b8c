"""Training: state, optimizers, losses, data-parallel steps, ``fit``, callbacks, checkpoints."""

from jaxcv.train.callbacks import EarlyStopping, ReduceLROnPlateau
from jaxcv.train.checkpoint import Checkpointer
from jaxcv.train.freeze import Stage, set_trainable, two_stage
from jaxcv.train.loop import (FitResult, NonFiniteLossError, aot_compile, evaluate_arrays, fit, fit_many,
                              pad_to_batches, predict)
from jaxcv.train.losses import classification, psnr, reconstruction, regression, vertex_regression
from jaxcv.train.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule
from jaxcv.train.parallel import data_mesh, maybe_initialize_distributed
from jaxcv.train.state import TrainState, create_state
from jaxcv.train.steps import evaluate, train_epoch, train_step

__all__ = ["EarlyStopping", "ReduceLROnPlateau", "Checkpointer", "FitResult", "aot_compile", "NonFiniteLossError",
           "evaluate_arrays", "fit", "fit_many", "pad_to_batches", "predict", "classification", "psnr", "reconstruction", "regression",
           "vertex_regression", "OPTIMIZERS",
           "SCHEDULES", "make_optimizer", "make_schedule", "data_mesh", "maybe_initialize_distributed",
           "TrainState", "create_state", "evaluate", "train_epoch", "train_step", "Stage", "set_trainable",
           "two_stage"]
