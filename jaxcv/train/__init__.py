"""Training: state, optimizers, losses, data-parallel steps, ``fit`` / ``fit_many``, callbacks,
checkpoints, TensorBoard logs."""

from jaxcv.train.callbacks import EarlyStopping, History, Record, ReduceLROnPlateau
from jaxcv.train.checkpoint import Checkpointer
from jaxcv.train.epochs import Arrays, BatchStream, aot_compile, host_batches
from jaxcv.train.evaluation import evaluate_arrays, pad_to_batches, predict
from jaxcv.train.freeze import Stage, set_trainable, two_stage
from jaxcv.train.loop import FitOptions, FitResult, NonFiniteLossError, fit, fit_many
from jaxcv.train.losses import classification, psnr, reconstruction, regression, vertex_regression
from jaxcv.train.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule
from jaxcv.train.parallel import data_mesh, maybe_initialize_distributed
from jaxcv.train.state import TrainState, create_state
from jaxcv.train.steps import evaluate, train_epoch, train_step
from jaxcv.train.tensorboard import TensorBoardLog

__all__ = ["EarlyStopping", "History", "Record", "ReduceLROnPlateau", "Checkpointer", "Arrays", "BatchStream",
           "aot_compile", "host_batches", "evaluate_arrays", "pad_to_batches", "predict", "FitOptions", "FitResult",
           "NonFiniteLossError", "fit", "fit_many", "classification", "psnr", "reconstruction", "regression",
           "vertex_regression", "OPTIMIZERS", "SCHEDULES", "make_optimizer", "make_schedule", "data_mesh",
           "maybe_initialize_distributed", "TrainState", "create_state", "evaluate", "train_epoch", "train_step",
           "TensorBoardLog", "Stage", "set_trainable", "two_stage"]
