"""Distorted training images (issue 28): the maths against independent references, the same
images on every backend from one seed, exact resume, no host reads per mini-batch, refusals."""

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import portamlp
from portamlp.backends import to_numpy
from portamlp.files.checkpoints import load_checkpoint
from portamlp.training.config import TrainConfig
from portamlp.training.distortions import (
    Distortions,
    DistortionSpec,
    gaussian_matrix,
    image_side,
)
from portamlp.training.dropout import MASK32, counter_hash, step_key

ALL = DistortionSpec(shift=2.0, rotation=12.0, zoom=0.15, shear=10.0, elastic_alpha=34.0,
                     elastic_sigma=4.0, flip=True)
AFFINE = DistortionSpec(shift=2.0, rotation=12.0, zoom=0.15, shear=10.0, flip=True)


@pytest.fixture(scope="module")
def digits():
    x, y = portamlp.datasets.load_mnist("train", length=16, backend="numpy", dtype="float64")
    return x, y


def _distort(backend, spec, x, step=3, seed=7, fill=0.0, row_offset=0):
    d = Distortions(backend.xp, backend.device, 28, spec, seed, backend.xp.float64, fill)
    return to_numpy(d.apply(backend.asarray(x, "float64"), step, row_offset))


def test_one_seed_gives_the_same_images_on_every_backend(backend, digits):
    x, _ = digits
    reference = _distort(portamlp.get_backend("numpy"), ALL, x)
    out = _distort(backend, ALL, x)
    if backend.name in ("numpy", "array_api_strict"):
        np.testing.assert_array_equal(out, reference)  # the same bits
    else:  # another library's sin, cos and matmul: the same images to round-off
        np.testing.assert_allclose(out, reference, atol=1e-9)
    assert not np.allclose(out, x)


def test_each_row_step_and_seed_draws_its_own_distortion(digits):
    x, _ = digits
    be = portamlp.get_backend("numpy")
    same = np.repeat(x[:1], 4, axis=0)
    out = _distort(be, ALL, same)
    assert not any(np.allclose(out[i], out[j]) for i in range(4) for j in range(i))
    assert not np.allclose(_distort(be, ALL, x, step=4), _distort(be, ALL, x, step=3))
    assert not np.allclose(_distort(be, ALL, x, seed=8), _distort(be, ALL, x, seed=7))
    # several processes: rows 6.. of a batch are distorted as in the whole batch
    np.testing.assert_array_equal(_distort(be, ALL, x[6:], row_offset=6),
                                  _distort(be, ALL, x)[6:])


def _uniform(seed, step, rows, per_row):
    """The [-1, 1) numbers of each row, recomputed from the documented hash."""
    key = step_key(seed, step, 1 << 20)
    h = counter_hash(np, np.arange(rows * per_row, dtype=np.int64).reshape(rows, per_row), key)
    return h


def test_the_affine_map_is_rotation_zoom_and_shear_inverted():
    """Each output pixel reads the source where the inverse of R(θ)·diag(zx, zy)·shear maps
    it, after the shift, mirrored where flipped: built here with np.linalg.inv."""
    be = portamlp.get_backend("numpy")
    d = Distortions(be.xp, be.device, 28, AFFINE, 5, np.float64)
    qx, qy = d.source_coordinates(2, 6)
    u = _uniform(5, 2, 6, 7)[:, :7].astype(np.float64) * 2.0 ** -31 - 1.0
    c = 13.5
    ys, xs = np.divmod(np.arange(784), 28)
    for r in range(6):
        theta = math.radians(12.0) * u[r, 0]
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        zoom = np.diag([1 + 0.15 * u[r, 1], 1 + 0.15 * u[r, 2]])
        shear = np.array([[1.0, math.tan(math.radians(10.0) * u[r, 3])], [0.0, 1.0]])
        inverse = np.linalg.inv(rot @ zoom @ shear)
        out = np.stack([xs - c - 2.0 * u[r, 4], ys - c - 2.0 * u[r, 5]])
        src = inverse @ out
        if u[r, 6] < 0:
            src[0] = -src[0]
        np.testing.assert_allclose(qx[r], src[0] + c, atol=1e-9)
        np.testing.assert_allclose(qy[r], src[1] + c, atol=1e-9)


def test_resampling_is_bilinear_with_the_background_outside(digits):
    """The distorted image is scipy's order-1 interpolation at the map's source coordinates,
    reading ``fill`` outside the image (standardised pixels: the background is not 0)."""
    x, _ = digits
    be = portamlp.get_backend("numpy")
    fill = -0.4242
    xs = x * 3.2457 + fill  # standardised-looking pixels
    d = Distortions(be.xp, be.device, 28, ALL, 1, np.float64, fill)
    out = d.apply(xs, 9)
    qx, qy = d.source_coordinates(9, x.shape[0])
    for r in range(x.shape[0]):
        expected = ndimage.map_coordinates(xs[r].reshape(28, 28), [qy[r], qx[r]], order=1,
                                           mode="constant", cval=fill)
        np.testing.assert_allclose(out[r], expected, atol=1e-12)
    # an empty image stays empty: nothing but background comes in from outside
    blank = np.full((3, 784), fill)
    np.testing.assert_allclose(d.apply(blank, 0), blank, atol=1e-12)


@pytest.mark.parametrize("sigma", [1.5, 3.0])
def test_the_elastic_field_is_gaussian_smoothed_uniform_noise(sigma):
    """Simard et al.'s field: uniform in [-1, 1), smoothed as scipy.ndimage.gaussian_filter
    does (zero outside, cut at 4σ), times α, added to the source coordinates. From σ = 2 the
    noise is drawn on every other pixel (times 2, zeros between)."""
    spec = DistortionSpec(elastic_alpha=30.0, elastic_sigma=sigma)
    be = portamlp.get_backend("numpy")
    d = Distortions(be.xp, be.device, 28, spec, 4, np.float64)
    stride = 1 if sigma < 2 else 2
    assert d.stride == stride
    n = 28 // stride
    qx, qy = d.source_coordinates(1, 3)
    field = _uniform(4, 1, 3, 7 + n * n)[:, 7:]
    ys, xs = np.divmod(np.arange(784), 28)
    for r in range(3):
        for half, q, grid in ((field[r] & 0xFFFF, qx, xs), (field[r] >> 16, qy, ys)):
            noise = np.zeros((28, 28))
            noise[::stride, ::stride] = stride * (half.astype(np.float64) * 2.0 ** -15 - 1.0
                                                  ).reshape(n, n)
            smooth = ndimage.gaussian_filter(noise.T, sigma, mode="constant", truncate=4.0)
            np.testing.assert_allclose(q[r], grid + 30.0 * smooth.reshape(-1), atol=1e-9)


def test_noise_on_every_other_pixel_gives_the_same_field_statistics():
    """For σ ≥ 2 the smoothed field's variance at each pixel, from noise on every other
    pixel (times 2), is that of noise on every pixel to under 7 % inside a 4-pixel border,
    50 % on it (in the corners)."""
    for sigma in (2.0, 4.0, 6.0):
        g = np.asarray(gaussian_matrix(28, sigma))
        every = np.outer(*[(g ** 2).sum(axis=1)] * 2)
        other = np.outer(*[2 * (g[:, ::2] ** 2).sum(axis=1)] * 2)  # √2 on each axis
        inside = (slice(4, 24), slice(4, 24))
        np.testing.assert_allclose(other[inside], every[inside], rtol=0.07)
        np.testing.assert_allclose(other, every, rtol=0.5)
    g = np.asarray(gaussian_matrix(28, 3.0))
    np.testing.assert_allclose(g, g.T)  # the smoothing matrix is symmetric


def test_the_random_numbers_are_uniform_and_the_elastic_field_unbiased():
    be = portamlp.get_backend("numpy")
    d = Distortions(be.xp, be.device, 28, ALL, 0, np.float64)
    u = d._signed(d._uniforms(0, 4000, 0)[:, :7])  # noqa: SLF001 (the generator itself)
    assert u.min() >= -1 and u.max() < 1
    np.testing.assert_allclose(u.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(u.var(axis=0), 1 / 3, atol=0.02)
    assert abs((u[:, 6] < 0).mean() - 0.5) < 0.03  # half the images are mirrored
    # the field's variance at pixel (i, j) is 1/3 · Σₖ G[i,k]² · Σₗ G[j,l]²
    elastic = Distortions(be.xp, be.device, 28, DistortionSpec(elastic_alpha=1.0), 0,
                          np.float64)
    qx, _ = elastic.source_coordinates(0, 2000)
    displacement = qx - np.arange(784) % 28
    g2 = 2 * (np.asarray(gaussian_matrix(28, 4.0))[:, ::2] ** 2).sum(axis=1)
    expected = np.outer(g2, g2).reshape(-1) / 3
    assert abs(displacement.mean()) < 0.002
    np.testing.assert_allclose(displacement.var(axis=0).mean(), expected.mean(), rtol=0.05)
    assert MASK32 == 2**32 - 1


def test_an_image_side_is_needed():
    assert image_side(784) == 28 and image_side(64) == 8
    with pytest.raises(ValueError, match=r"\(rotation=5\) need square images.*10 features"):
        image_side(10, DistortionSpec(rotation=5))


# ------------------------------------------------------------------------------ in training
RUN = dict(layers=(784, 24, 10), train_length=600, validation_length=100, test_length=100,
           batch_size=50, seed=3, activation="relu", cost="cross_entropy", learning_rate=0.1,
           momentum=0.9, rotation=10.0, elastic_alpha=20.0, shift=1.0)


def _same(a, b, **tolerance):
    for p, q in zip(a.host_parameters()[0] + a.host_parameters()[1],
                    b.host_parameters()[0] + b.host_parameters()[1]):
        if tolerance:
            np.testing.assert_allclose(p, q, **tolerance)
        else:
            np.testing.assert_array_equal(p, q)


def test_training_on_numpy_and_array_api_strict_gives_the_same_network():
    plain = portamlp.train(**{**RUN, "rotation": 0.0, "elastic_alpha": 0.0, "shift": 0.0},
                           epochs=1, dtype="float64")
    on_numpy = portamlp.train(**RUN, epochs=1, dtype="float64")
    strict = portamlp.train(**RUN, epochs=1, dtype="float64", backend="array_api_strict",
                            device="device1")
    _same(on_numpy.network, strict.network, rtol=1e-12, atol=1e-13)
    assert not np.allclose(on_numpy.network.host_parameters()[0][0],
                           plain.network.host_parameters()[0][0])
    assert on_numpy.fast_step is False and on_numpy.config.distortions == DistortionSpec(
        shift=1.0, rotation=10.0, elastic_alpha=20.0)


def test_a_run_stopped_mid_epoch_resumes_exactly(tmp_path, monkeypatch):
    """A signal after step 17 (of 12 per epoch: inside epoch 2) leaves a checkpoint; the
    resumed run distorts the remaining batches as the uninterrupted run did."""
    straight = portamlp.train(**RUN, epochs=3)
    original = Distortions.apply

    def apply(self, x, step, row_offset=0):
        if step == 17:
            signal.raise_signal(signal.SIGINT)
        return original(self, x, step, row_offset)

    monkeypatch.setattr(Distortions, "apply", apply)
    with pytest.raises(portamlp.TrainingInterrupted, match="after mini-batch 6 of 12"):
        portamlp.train(**RUN, epochs=3, checkpoint=tmp_path)
    monkeypatch.setattr(Distortions, "apply", original)
    position = load_checkpoint(tmp_path).position
    assert (position.epoch, position.batch) == (2, 6)
    resumed = portamlp.train(resume=tmp_path)
    _same(straight.network, resumed.network)
    assert resumed.test_accuracy == straight.test_accuracy


def test_flipping_written_symbols_is_warned_about():
    with pytest.warns(portamlp.PortamlpWarning, match="a mirrored character is not one of"):
        portamlp.train(layers=(784, 8, 10), train_length=100, validation_length=0,
                       test_length=0, epochs=1, flip=True)


def test_distortions_are_refused_where_they_cannot_apply(rng):
    x = rng.standard_normal((40, 10)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    with pytest.raises(ValueError, match="need square images.*10 features"):
        portamlp.train(x=x, y=y, layers=(10, 4, 2), epochs=1, rotation=5)
    with pytest.raises(ValueError, match="optimizer='lbfgs'.*elastic_alpha=3"):
        portamlp.train(layers=(784, 8, 10), train_length=50, optimizer="lbfgs",
                       elastic_alpha=3.0, epochs=1)
    with pytest.raises(ValueError, match="rotation"):
        portamlp.train(**{**RUN, "rotation": 200}, epochs=1)
    with pytest.raises(ValueError, match="zoom"):
        portamlp.train(**RUN, zoom=1.5, epochs=1)
    with pytest.raises(ValueError, match="honoured.*distortions are not in the fast step"):
        portamlp.train(**RUN, epochs=1, fast_path="on")


def test_own_square_images_are_distorted_with_their_background(rng):
    """Own 8×8 images (scikit-learn's digits): the background is the smallest value of x."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x / 16.0 - 0.5
    result = portamlp.train(x=x, y=y, layers=(64, 32, 10), epochs=2, batch_size=32, seed=0,
                            learning_rate=0.1, cost="cross_entropy", activation="relu",
                            momentum=0.9, rotation=10.0, shift=0.5)
    assert result.history[-1].train_cost < result.history[0].train_cost


# ----------------------------------------------------------------- command line, estimator
def _png_pixels(path):
    from matplotlib.image import imread

    return imread(path)


def test_plot_distortions_draws_each_distortion_and_refuses_bad_requests(tmp_path):
    from cli_helpers import run

    out = run("plot", "distortions", "-o", "d.png", "--json", cwd=tmp_path).stdout
    report = json.loads(out)
    assert report["rows"] == 6 and "elastic_alpha=34.0" in report["distortions"]  # 5 + together
    pixels = _png_pixels(tmp_path / "d.png")
    assert pixels.shape[0] > 500 and pixels.std() > 0.1  # a drawn grid, not a blank page
    # a recipe's distortions, one flag overriding it
    (tmp_path / "r.toml").write_text('[train]\nrotation = 8.0\nflip = true\n')
    report = json.loads(run("plot", "distortions", "--config", "r.toml", "--rotation", "4",
                            "--count", "3", "-o", "r.png", "--json", cwd=tmp_path).stdout)
    assert report == {"output": "r.png", "distortions": "rotation=4.0, flip=True", "rows": 3}
    for argv, message in (
            (["--rotation", "500"], "rotation"),
            (["--index", "70000"], "--index 70000 is out of range"),
            (["--count", "0"], "--count 0"),
            (["-o", "d.png"], "already exists")):
        proc = run("plot", "distortions", *argv, cwd=tmp_path, check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    (tmp_path / "plain.toml").write_text('[train]\nepochs = 3\n')
    (tmp_path / "bad.toml").write_text('[train]\nrotation = -10.0\n')
    for argv, message in (
            (["--elastic-sigma", "2"], "the options given set no distortion (--elastic-sigma 2"),
            (["--config", "plain.toml"], "plain.toml sets no distortion"),
            (["--config", "bad.toml"], "rotation=-10.0 must be >= 0.0 and < 180.0 (rotation "
                                       "is set in bad.toml)")):
        proc = run("plot", "distortions", *argv, "-o", "x.png", cwd=tmp_path, check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    proc = run("plot", "x.run.json", "--rotation", "3", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--rotation does not apply to the plot of a run" in \
        proc.stderr


def test_train_flags_and_config_keys(tmp_path):
    from cli_helpers import run

    proc = run("train", "--layers", "784,16,10", "--train-length", "300",
               "--validation-length", "0", "--test-length", "100", "--epochs", "1",
               "--rotation", "10", "--elastic-alpha", "20", "--flip", "--json",
               "--save", "n.json", "--seed", "1", cwd=tmp_path)
    options = json.loads(proc.stdout)["options"]
    assert (options["rotation"], options["elastic_alpha"], options["flip"]) == (10.0, 20.0, True)
    proc = run("train", "--layers", "10,4,2", "--epochs", "1", "--rotation", "3",
               "--dataset", "nothing", cwd=tmp_path, check=False)
    assert proc.returncode == 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_estimators_take_distortions():
    from sklearn.datasets import load_digits

    from portamlp.checks import InvalidParameterError
    from portamlp.sklearn import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    plain = MLPClassifier((32,), max_iter=3, random_state=0).fit(x, y)
    bent = MLPClassifier((32,), max_iter=3, random_state=0,
                         distortions={"rotation": 10, "shift": 0.5}).fit(x, y)
    assert not np.allclose(plain.coefs_[0], bent.coefs_[0])
    again = MLPClassifier((32,), max_iter=3, random_state=0,
                          distortions={"rotation": 10, "shift": 0.5}).fit(x, y)
    np.testing.assert_array_equal(again.coefs_[0], bent.coefs_[0])
    for bad, message in (({"rotaton": 3}, "unknown key 'rotaton' \\(did you mean 'rotation'"),
                         ({"rotation": -1}, "rotation"),
                         ("rotation", "must be None or a dict such as")):
        with pytest.raises(InvalidParameterError, match=message):
            MLPClassifier((8,), max_iter=1, distortions=bad).fit(x, y)
    with pytest.raises(InvalidParameterError, match="solver='lbfgs'.*distortions=None"):
        MLPClassifier((8,), solver="lbfgs", distortions={"zoom": 0.1}).fit(x, y)
    with pytest.raises(ValueError, match="X has 10 features.*distortions=None"):
        MLPClassifier((8,), max_iter=1, distortions={"zoom": 0.1}).fit(x[:, :10], y)


def test_the_recipes_distort_as_documented():
    from portamlp.cli.training import read_config

    root = Path(__file__).resolve().parents[1] / "examples"
    mnist = TrainConfig(**{k: v for k, v in read_config(root / "mnist-distortions.toml").items()
                           if k != "momentum"}).distortions
    assert mnist.elastic_alpha > 0 and not mnist.flip  # flips are wrong for digits
    fashion = root / "fashion-mnist.toml"
    assert "flip" not in read_config(fashion)  # measured: flips did not help it
    assert "# flip = true" in fashion.read_text()
