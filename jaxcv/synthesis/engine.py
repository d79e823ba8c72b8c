"""Optimise a batch of images against a fixed network: one compiled program for the whole loop.

Each image is optimised on its own (its own ``unit``, random draws and optimiser state); the
batch runs as one call, vmapped for gradient steps (many units fill the device together) and
mapped one image after another for L-BFGS, whose line search branches per image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Iterator, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxcv.errors import UsageError
from jaxcv.synthesis.network import Network
from jaxcv.synthesis.objectives import Objective, Probe
from jaxcv.synthesis.optimisers import LBFGS, NormalisedGradient, Optimiser
from jaxcv.synthesis.regularisers import gaussian_blur
from jaxcv.synthesis.transforms import Jitter


@dataclasses.dataclass(frozen=True)
class Settings:
    """How images are optimised.

    ``noise``: uniform noise of this amplitude is added to the image at the start of every
    iteration and taken away at its end (Keras' deep dream "jitter").  ``blur``: every
    ``blur_every`` iterations the image is blurred by a Gaussian of ``blur`` pixels.
    ``clip``: after every iteration pixels are clipped to ``[0, 1]``, the valid range that the
    network's ``preprocess`` maps to its own input range.  ``snapshots``: the iterations
    (1 … ``iterations``) after which the image is kept as well as the last one.
    """

    iterations: int = 20
    optimiser: Optimiser = NormalisedGradient()
    jitter: Jitter = Jitter()
    noise: float = 0.0
    blur: float = 0.0
    blur_every: int = 1
    clip: bool = True
    snapshots: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise UsageError(f"iterations is {self.iterations}; it must be >= 0")
        if not (0 <= self.noise < math.inf and 0 <= self.blur < math.inf) or self.blur_every < 1:  # NaN too
            raise UsageError(f"noise {self.noise} and blur {self.blur} must be finite and >= 0, "
                             f"blur_every {self.blur_every} >= 1")
        if bad := [s for s in self.snapshots if not 1 <= s <= self.iterations]:
            raise UsageError(f"snapshot iteration(s) {bad} outside 1..{self.iterations} (the iterations)")

    @property
    def recorded(self) -> tuple[int, ...]:
        """The iterations whose images and term values a ``Result`` holds: 0, the snapshots, the last."""
        return tuple(sorted({0, *self.snapshots, self.iterations}))


class Result(NamedTuple):
    """What ``optimise`` returns for ``N`` images, as numpy arrays.

    ``images[:, j]`` is the image after ``iterations[j]`` iterations (``[0, 1]`` RGB, clipped
    only if ``Settings.clip``); ``terms[name][:, j]`` is each objective term's unweighted value
    there, evaluated without random transforms or noise.  ``loss[:, k]`` is the loss after ``k``
    iterations as the optimiser evaluated it (at the start of iteration ``k + 1``, under its
    random draw); ``loss[:, -1]`` is evaluated without them.  ``evaluations[:, k]``: the loss
    and gradient evaluations iteration ``k + 1`` spent (1 for a gradient step).
    """

    iterations: tuple[int, ...]
    images: np.ndarray
    terms: dict[str, np.ndarray]
    loss: np.ndarray
    evaluations: np.ndarray

    @property
    def final(self) -> np.ndarray:
        """The optimised images ``(N, H, W, C)``."""
        return self.images[:, -1]

    def at(self, iteration: int) -> np.ndarray:
        """The images after ``iteration`` iterations (one of ``iterations``)."""
        return self.images[:, self.iterations.index(iteration)]

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields as one flat ``{name: array}`` (each term as ``terms/<name>``), as
        ``np.savez`` keeps them."""
        return {"iterations": np.asarray(self.iterations), "images": self.images, "loss": self.loss,
                "evaluations": self.evaluations, **{f"terms/{k}": v for k, v in self.terms.items()}}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Result:
        """A ``Result`` from its ``arrays()``."""
        return cls(tuple(int(i) for i in arrays["iterations"]), arrays["images"],
                   {k.removeprefix("terms/"): v for k, v in arrays.items() if k.startswith("terms/")},
                   arrays["loss"], arrays["evaluations"])


def optimise(network: Network, objective: Objective, images: jax.Array, settings: Settings = Settings(),
             units: jax.Array | None = None, key: jax.Array | None = None,
             batch_size: int | None = None, progress: str | None = None) -> Result:
    """Minimise ``objective`` over each of ``images`` (``(N, H, W, C)`` in ``[0, 1]``, or one
    ``(H, W, C)``), image ``i`` working on unit ``units[i]`` (default 0) with its random draws
    from ``key`` (one key split over the images, or one key per image).  Gradient steps run
    ``batch_size`` images at a time (default all: memory grows with it), L-BFGS one at a time.
    ``progress``: a progress bar of that title counts the iterations as the compiled loop runs.

    Bad requests (negative weights, an unknown layer, an image too small for a layer) are a
    ``UsageError`` before anything is computed.
    """
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 3:
        images = images[None]
    units = np.zeros(len(images), np.int32) if units is None else np.asarray(units, np.int32)
    if units.shape != images.shape[:1]:
        raise UsageError(f"{len(units)} units for {len(images)} images; give one unit per image")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"batch size is {batch_size}; it must be >= 1")
    objective.check()
    objective.check_units(units, network.check(objective.layers, images.shape[1:]))
    key = jax.random.key(0) if key is None else key
    keys = key if key.shape == (len(images),) else jax.random.split(key, len(images))
    if isinstance(settings.optimiser, LBFGS):
        batch_size = None  # vmapped, its line search's conds would run both branches
    else:
        batch_size = min(batch_size or len(images), len(images))
    if batch_size == 1:
        # unbatched: vmapped over one image (deep dream's case), 10 gradient steps of VGG16 at
        # 128 px ran 15 % slower on XLA:CPU (jax 0.11), as ``members.vmap`` found for training
        batch_size = None
    groups = len(images) if batch_size is None else -(-len(images) // batch_size)  # the loop runs once per group
    with _progress_bar(progress, groups * settings.iterations):
        images_at, terms, loss, evaluations = _optimise(network, objective, settings, batch_size, progress is not None,
                                                        images, units, keys)
        images_at = np.asarray(images_at)
        jax.effects_barrier()  # every iteration's callback has run
    return Result(settings.recorded, images_at, {k: np.asarray(v) for k, v in terms.items()},
                  np.asarray(loss), np.asarray(evaluations))


class _Bar:
    """The progress bar the running loop's iterations advance, from the runtime's callback thread
    (a module attribute, as one compiled loop serves every call; ``optimise`` calls do not overlap)."""

    current: tqdm | None = None

    @classmethod
    def advance(cls) -> None:
        if cls.current is not None:
            cls.current.update()


@contextlib.contextmanager
def _progress_bar(title: str | None, total: int) -> Iterator[None]:
    if title is None:
        yield
        return
    with tqdm(total=total, desc=title, unit="it") as _Bar.current:
        try:
            yield
        finally:
            _Bar.current = None


@functools.partial(jax.jit, static_argnames=("settings", "batch_size", "progress"))
def _optimise(network: Network, objective: Objective, settings: Settings, batch_size: int | None, progress: bool,
              images: jax.Array, units: jax.Array, keys: jax.Array):
    one = functools.partial(_optimise_one, network, objective, settings, progress)
    return jax.lax.map(lambda args: one(*args), (images, units, keys), batch_size=batch_size)


def score(network: Network, objective: Objective, images: jax.Array, units: jax.Array | None = None
          ) -> dict[str, np.ndarray]:
    """Every term's unweighted value for each of ``images`` (``(N, H, W, C)`` in ``[0, 1]``),
    image ``i`` on unit ``units[i]`` (default 0), without random transforms."""
    images = jnp.asarray(images, jnp.float32)
    units = jnp.zeros(len(images), jnp.int32) if units is None else jnp.asarray(units, jnp.int32)
    objective.check()
    network.check(objective.layers, images.shape[1:])
    return {k: np.asarray(v) for k, v in _score(network, objective, images, units).items()}


@jax.jit
def _score(network: Network, objective: Objective, images: jax.Array, units: jax.Array) -> dict[str, jax.Array]:
    def one(image: jax.Array, unit: jax.Array) -> dict[str, jax.Array]:
        return objective(probe(network, Jitter(), image, jax.random.key(0)), unit)[1]

    return jax.lax.map(lambda args: one(*args), (images, units))


def probe(network: Network, jitter: Jitter, image: jax.Array, key: jax.Array) -> Probe:
    """One ``(H, W, C)`` image as the network sees it: its input as is, and the features of a
    random ``jitter`` of it drawn from ``key``."""
    features = network.features(network.preprocess(jitter(key, image)[None]))
    return Probe(network.preprocess(image[None])[0], {name: f[0] for name, f in features.items()})


def _optimise_one(network: Network, objective: Objective, settings: Settings, progress: bool, image: jax.Array,
                  unit: jax.Array, key: jax.Array):
    """One image through every iteration: its recorded images, their term values, the losses,
    the evaluations spent."""
    optimiser = settings.optimiser
    recorded = settings.recorded
    slot = np.full(settings.iterations + 1, -1)
    slot[list(recorded)] = np.arange(len(recorded))

    def loss_at(x: jax.Array, draw: jax.Array) -> jax.Array:
        return objective(probe(network, settings.jitter, x, draw), unit)[0]

    def iteration(i, carry):
        x, state, images_at, losses, evaluations, key = carry
        key, k_jitter, k_noise = jax.random.split(key, 3)
        noise = settings.noise * jax.random.uniform(k_noise, x.shape, minval=-1.0, maxval=1.0)
        x, state, value, spent = optimiser.iterate(lambda y: loss_at(y, k_jitter), x + noise, state)
        x = x - noise
        if settings.blur:
            x = jax.lax.cond((i + 1) % settings.blur_every == 0,
                             functools.partial(gaussian_blur, sigma=settings.blur), lambda x: x, x)
        if settings.clip:
            x = jnp.clip(x, 0.0, 1.0)
        images_at = jax.lax.cond(jnp.asarray(slot)[i + 1] >= 0,
                                 lambda: images_at.at[jnp.asarray(slot)[i + 1]].set(x), lambda: images_at)
        if progress:
            jax.debug.callback(_Bar.advance)
        return x, state, images_at, losses.at[i].set(value), evaluations.at[i].set(spent), key

    images_at = jnp.zeros((len(recorded), *image.shape), image.dtype).at[0].set(image)
    losses = jnp.zeros(settings.iterations + 1, jnp.float32)
    evaluations = jnp.zeros(settings.iterations, jnp.int32)
    carry = (image, optimiser.init(image), images_at, losses, evaluations, key)
    _, _, images_at, losses, evaluations, _ = jax.lax.fori_loop(0, settings.iterations, iteration, carry)

    def clean(x: jax.Array):
        return objective(probe(network, Jitter(), x, key), unit)

    loss_end, terms = jax.lax.map(clean, images_at)
    return images_at, terms, losses.at[-1].set(loss_end[-1]), evaluations
