"""Optimizers by name, with weight decay and learning-rate schedules, from optax."""

from __future__ import annotations

import math

import optax

from jaxcv.errors import UsageError

SCHEDULES = ("constant", "cosine", "exponential")


def _base(name: str, lr: optax.ScalarOrSchedule, momentum: float | None, nesterov: bool,
          weight_decay: float) -> optax.GradientTransformation:
    # Keras' defaults where optax's differ (Adadelta's rho and epsilon, RMSprop's rho).
    makers = {
        "sgd": lambda: optax.sgd(lr, momentum=momentum, nesterov=nesterov),
        "adam": lambda: optax.adam(lr),
        "adamw": lambda: optax.adamw(lr, weight_decay=weight_decay),
        "adadelta": lambda: optax.adadelta(lr, rho=0.95, eps=1e-7),
        "adagrad": lambda: optax.adagrad(lr),
        "adamax": lambda: optax.adamax(lr),
        "nadam": lambda: optax.nadam(lr),
        "rmsprop": lambda: optax.rmsprop(lr, decay=0.9, eps=1e-7, momentum=momentum, nesterov=nesterov),
    }
    return makers[name]()


OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "adagrad", "adamax", "nadam", "rmsprop")


def make_schedule(name: str, learning_rate: float, total_steps: int,
                  decay_rate: float = 0.1) -> optax.ScalarOrSchedule:
    """``constant``, ``cosine`` (to 0 over ``total_steps``) or ``exponential`` (to
    ``decay_rate`` times the start over ``total_steps``)."""
    if name == "constant":
        return learning_rate
    if total_steps <= 0:
        raise UsageError(f"schedule {name!r} needs total_steps > 0, got {total_steps}")
    if name == "cosine":
        return optax.cosine_decay_schedule(learning_rate, total_steps)
    if name == "exponential":
        return optax.exponential_decay(learning_rate, total_steps, decay_rate)
    raise UsageError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")


def make_optimizer(name: str, learning_rate: optax.ScalarOrSchedule, *, momentum: float = 0.0,
                   nesterov: bool = False, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """An optax optimizer by name (``OPTIMIZERS``).

    ``weight_decay`` is decoupled for ``adamw`` and an L2 term on the gradient (Keras'
    kernel regulariser) for every other optimizer.  The optimizer is wrapped in
    ``optax.inject_hyperparams``: its state holds ``learning_rate`` (unless it is a
    schedule), ``weight_decay`` and, for sgd and rmsprop with momentum, ``momentum`` as
    arrays, which ``fit_many`` sets per model.
    """
    if name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if not 0 <= weight_decay < math.inf:  # NaN too
        raise UsageError(f"weight_decay must be finite and >= 0, got {weight_decay}")
    if nesterov and not momentum:
        raise UsageError("nesterov needs momentum > 0")
    uses_momentum = bool(momentum) and name in ("sgd", "rmsprop")

    def build(learning_rate, weight_decay, momentum):
        tx = _base(name, learning_rate, momentum if uses_momentum else None, nesterov, weight_decay)
        return tx if name == "adamw" else optax.chain(optax.add_decayed_weights(weight_decay), tx)

    static = [k for k, dynamic in (("learning_rate", not callable(learning_rate)),
                                   ("momentum", uses_momentum)) if not dynamic]
    return optax.inject_hyperparams(build, static_args=static)(
        learning_rate=learning_rate, weight_decay=weight_decay, momentum=momentum)
