"""On-device augmentation: each transform's geometry on small synthetic images, randomness, jit/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcv.data.augment import Augment, add_noise, affine_matrix, flip, warp

# Augment as a static argument of jit, as a training step holds it (eager calls would compile op by op)
augmented = jax.jit(lambda augment, rng, images: augment(rng, images), static_argnums=0)
warped = jax.jit(warp, static_argnums=2)
noised = jax.jit(add_noise)  # std traced: one compile for every std


def marked(row, col, height=9, width=9, channels=1):
    image = np.zeros((height, width, channels), np.float32)
    image[row, col] = 1.0
    return jnp.asarray(image)


def brightest(image):
    return tuple(int(i) for i in np.unravel_index(np.argmax(np.asarray(image).sum(-1)), image.shape[:2]))


def test_flip_moves_a_marked_pixel_to_its_mirror():
    image = marked(1, 2, height=5, width=7)
    assert brightest(flip(image, True, False)) == (1, 4)
    assert brightest(flip(image, False, True)) == (3, 2)
    assert brightest(flip(image, True, True)) == (3, 4)
    assert np.array_equal(flip(image, False, False), image)


def test_random_flips_are_mirrors_and_happen_about_half_the_time():
    images = jnp.broadcast_to(marked(1, 2, height=5, width=7), (64, 5, 7, 1))
    where = [brightest(im) for im in augmented(Augment(horizontal_flip=True, vertical_flip=True),
                                               jax.random.key(0), images)]
    assert set(where) == {(1, 2), (1, 4), (3, 2), (3, 4)}
    assert 16 < sum(col == 4 for _, col in where) < 48 and 16 < sum(row == 3 for row, _ in where) < 48


def test_shift_moves_content_up_and_left_by_the_pixels_given():
    # Keras' direction: positive shifts sample further down / right, so content moves up / left
    image = marked(4, 4)
    assert brightest(warped(image, affine_matrix(shift=(0.0, 3.0)))) == (4, 1)
    assert brightest(warped(image, affine_matrix(shift=(2.0, 0.0)))) == (2, 4)
    assert brightest(warped(image, affine_matrix(shift=(-2.0, -3.0)))) == (6, 7)


def test_shift_fractions_scale_by_their_own_axis():
    augment = Augment(width_shift=0.25, height_shift=0.125)
    extremes = jnp.array([[0.0, 1.0, -1.0, 0.0, 0.0, 0.0], [0.0, -0.5, 0.5, 0.0, 0.0, 0.0]])
    matrices = augment.matrices(extremes, 16, 32)
    assert np.allclose(matrices[:, :2, 2], [[2.0, -8.0], [-1.0, 4.0]])  # rows 0.125 × 16, columns 0.25 × 32
    assert np.allclose(matrices[:, :2, :2], np.eye(2))


def test_rotation_by_90_degrees_is_counter_clockwise():
    above, right = marked(1, 4), marked(4, 7)
    assert brightest(warped(above, affine_matrix(rotation=90.0))) == (4, 1)
    assert brightest(warped(right, affine_matrix(rotation=90.0))) == (1, 4)
    rotated = warped(above, affine_matrix(rotation=90.0))
    assert np.allclose(rotated, marked(4, 1), atol=1e-5)


def test_identity_returns_the_input_exactly():
    images = jnp.asarray(np.random.default_rng(0).random((4, 8, 6, 3), np.float32))
    assert Augment()(jax.random.key(1), images) is images
    assert Augment(zoom=0.0, width_shift=0.0, height_shift=0.0).is_identity
    for mode in ("nearest", "reflect", "constant"):
        assert np.array_equal(warped(images[0], affine_matrix(), mode), images[0])
    assert np.array_equal(warped(images[0], affine_matrix(zoom=(1.0, 1.0), shift=(0.0, 0.0))), images[0])


def test_zoom_below_one_magnifies_about_the_centre():
    image = np.zeros((8, 8, 1), np.float32)
    image[3:5, 3:5] = 1.0  # a 2×2 block at the centre (3.5, 3.5)
    zoomed_in = np.asarray(warped(jnp.asarray(image), affine_matrix(zoom=(0.5, 0.5))))[..., 0]
    assert np.array_equal(np.nonzero(zoomed_in >= 0.5), np.nonzero(np.pad(np.ones((4, 4)), 2)))  # 2×2 -> 4×4
    rows, cols = np.nonzero(zoomed_in)
    assert np.average(rows, weights=zoomed_in[rows, cols]) == pytest.approx(3.5)
    assert np.average(cols, weights=zoomed_in[rows, cols]) == pytest.approx(3.5)
    zoomed_out = np.asarray(warped(jnp.asarray(image), affine_matrix(zoom=(2.0, 2.0)), "constant"))[..., 0]
    assert zoomed_out.sum() < image.sum()


def test_positive_shear_tilts_a_vertical_line_top_left():
    line = np.zeros((9, 9, 1), np.float32)
    line[:, 4] = 1.0
    sheared = np.asarray(warped(jnp.asarray(line), affine_matrix(shear=30.0)))[..., 0]
    # output (r, c) samples column c - sin(30°)(r - 4): the line runs through (0, 2), (4, 4), (8, 6)
    assert sheared[0, 2] == pytest.approx(1.0) and sheared[4, 4] == pytest.approx(1.0)
    assert sheared[8, 6] == pytest.approx(1.0) and sheared[0, 4] == pytest.approx(0.0)


def test_fill_modes_at_the_border():
    image = jnp.asarray(np.arange(16, dtype=np.float32).reshape(4, 4, 1) / 16)
    shifted = affine_matrix(shift=(0.0, 2.0))  # the two right columns sample beyond the edge
    assert np.allclose(warped(image, shifted, "constant", cval=0.5)[:, 2:], 0.5)
    assert np.allclose(warped(image, shifted, "nearest")[:, 2:], image[:, 3:])
    assert np.allclose(warped(image, shifted, "reflect")[:, 2:], image[:, 3:1:-1])


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant"])
def test_warp_matches_keras_apply_affine_transform(fill_mode):
    keras_image = pytest.importorskip("keras.src.legacy.preprocessing.image")
    rng = np.random.default_rng(0)
    image = rng.random((9, 9, 3))
    for _ in range(4):
        theta, tx, ty, shear = rng.uniform(-40, 40), rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-30, 30)
        zx, zy = rng.uniform(0.7, 1.3, 2)
        expected = keras_image.apply_affine_transform(image, theta, tx, ty, shear, zx, zy, row_axis=0, col_axis=1,
                                                      channel_axis=2, fill_mode=fill_mode, cval=0.3, order=1)
        # on square images Keras' tx / zx act on columns and ty / zy on rows
        ours = warped(jnp.asarray(image, jnp.float32), affine_matrix(theta, (ty, tx), shear, (zy, zx)), fill_mode, 0.3)
        assert np.allclose(ours, expected, atol=1e-5)


def test_noise_has_the_requested_std_and_zero_mean():
    images = jnp.full((32, 16, 16, 3), 0.5)
    for noisy in (augmented(Augment(noise=0.05), jax.random.key(0), images), noised(jax.random.key(0), images, 0.05)):
        delta = np.asarray(noisy) - 0.5
        assert abs(delta.mean()) < 0.001 and delta.std() == pytest.approx(0.05, rel=0.02)
    loud = noised(jax.random.key(0), images, 2.0)
    assert float(loud.min()) == 0.0 and float(loud.max()) == 1.0


FULL = Augment(rotation=20.0, width_shift=0.2, height_shift=0.2, shear=11.3, zoom=0.2, horizontal_flip=True,
               vertical_flip=True, noise=0.02)


def test_each_example_draws_its_own_transform_and_keys_reproduce():
    images = jnp.broadcast_to(jnp.asarray(np.random.default_rng(0).random((12, 10, 3), np.float32)), (8, 12, 10, 3))
    out = augmented(FULL, jax.random.key(1), images)
    assert out.shape == images.shape and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    flat = np.asarray(out).reshape(8, -1)
    assert min(np.abs(flat[i] - flat[j]).max() for i in range(8) for j in range(i)) > 0.05
    assert np.array_equal(augmented(FULL, jax.random.key(1), images), out)
    assert not np.array_equal(augmented(FULL, jax.random.key(2), images), out)


def test_is_hashable_and_vmaps():
    assert hash(FULL) == hash(Augment(**{f: getattr(FULL, f) for f in FULL.__dataclass_fields__}))
    images = jnp.asarray(np.random.default_rng(0).random((2, 8, 12, 10, 3), np.float32))
    keys = jax.random.split(jax.random.key(3), 2)
    batched = jax.jit(jax.vmap(FULL))(keys, images)
    assert batched.shape == images.shape
    assert np.allclose(batched[1], augmented(FULL, keys[1], images[1]), atol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    ({"rotation": -1.0}, "rotation must be a finite number >= 0"),
    ({"noise": float("nan")}, "noise must be a finite number >= 0"),
    ({"width_shift": 1.0}, "width_shift is a fraction"),
    ({"zoom": 1.0}, "zoom must be < 1"),
    ({"fill_mode": "wrap"}, "fill_mode must be one of nearest, reflect, constant"),
])
def test_bad_arguments_are_one_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Augment(**kwargs)


def test_rejects_integer_or_unbatched_images():
    with pytest.raises(ValueError, match="expected a float batch"):
        Augment(rotation=10.0)(jax.random.key(0), jnp.zeros((2, 8, 8, 3), jnp.uint8))
    with pytest.raises(ValueError, match="expected a float batch"):
        Augment(rotation=10.0)(jax.random.key(0), jnp.zeros((8, 8, 3)))
