"""Runs that go wrong say so (a collapsed network, unscaled inputs, settings-aware advice), and
the newcomer's other findings: a model path as ``network=``, ``validation_split``, one-class
labels, a public home for photo preparation, readable plots."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import portamlp
from portamlp import Network, PortamlpWarning
from portamlp.training.advice import (
    collapse_advice,
    collapsed,
    nice_below,
    rate_advice,
    rate_limit,
)
from portamlp.training.config import TrainConfig


def _config(**options) -> TrainConfig:
    return TrainConfig(**TrainConfig.split({"layers": (784, 30, 10), **options}))


def _messages(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, PortamlpWarning)]


# ------------------------------------------------------------------ the rules, one by one
def test_nice_values_below():
    assert [nice_below(v) for v in (0.586, 1.17, 0.293, 10.0, 3.0, 0.0099)] == \
        [0.5, 1.0, 0.25, 10.0, 3.0, 0.005]


def test_the_width_limit_of_plain_sgd():
    assert rate_limit(_config(layers=(784, 100, 10)), (784, 100, 10)) == pytest.approx(3.0)
    assert rate_limit(_config(layers=(784, 512, 10)), (784, 512, 10)) == pytest.approx(300 / 512)
    # the widest hidden layer counts, momentum shrinks the limit, other optimizers have none
    assert rate_limit(_config(), (784, 100, 600, 10)) == pytest.approx(0.5)
    assert rate_limit(_config(momentum=0.5), (784, 100, 10)) == pytest.approx(1.5)
    assert rate_limit(_config(optimizer="adam", learning_rate=0.001), (784, 100, 10)) is None
    assert rate_limit(_config(), (784, 10)) is None
    assert rate_advice(_config(layers=(784, 512, 10)), (784, 512, 10)) == \
        (0.5, "learning_rate=3.0 is too large for a hidden layer of 512 units")
    assert rate_advice(_config(), (784, 30, 10)) == (1.0, None)  # within the limit: a third


def test_what_counts_as_collapsed():
    balanced = [1000] * 10
    assert collapsed(0.95, [1000] * 10, balanced) is None
    assert "about what always answering the commonest class gives (10%)" in collapsed(
        0.11, [1000] * 10, balanced)
    # validation rows of one class show nothing about a collapse (a split of sorted rows)
    assert collapsed(0.0, [700, 300, 0], [0, 0, 1000]) is None
    # 9,264 of 10,000 to class 0, every class predicted at least once (the newcomer's run)
    one = [9264] + [82] * 9
    message = collapsed(0.30, one, balanced)
    assert message.startswith("93% of the validation rows go to class 0")
    # a class that holds most labels may take most predictions
    assert collapsed(0.93, [9000, 500, 500], [9000, 500, 500]) is None
    # two classes: half the predictions to one class is not a collapse
    assert collapsed(0.80, [700, 300], [500, 500]) is None
    assert collapsed(0.5, [], []) is None


def test_unscaled_inputs_come_before_the_learning_rate():
    text, options = collapse_advice(_config(), (13, 30, 3), [0.5, 0.3], largest_input=1680.0)
    assert options == {} and "its inputs look unscaled (values up to 1680 in magnitude)" in text
    assert "learning rate cannot make up for it" in text


def test_collapse_advice_reads_the_training_costs():
    config = _config(learning_rate=0.01, layers=(784, 10))
    text, options = collapse_advice(config, (784, 10), [0.5])
    assert options == {"learning_rate": 0.003} and "a larger rate (0.03)" in text
    text, options = collapse_advice(config, (784, 10), [0.5, 0.3])
    assert options == {"learning_rate": 0.03} and "falls slowly" in text
    text, options = collapse_advice(config, (784, 10), [0.5, 0.5])
    assert options == {"learning_rate": 0.003} and "not falling" in text


# ------------------------------------------------------------------ the warnings, in runs
@pytest.mark.slow
def test_a_too_wide_layer_for_the_rate_says_so_and_the_named_rate_works(mnist_small):
    """784-512-10 at the default η = 3.0 collapses; the warning names η = 0.5, which trains."""
    options = dict(layers=[784, 512, 10], epochs=1, seed=0, train_length=50_000,
                   validation_length=2_000, test_length=2_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bad = portamlp.train(**options)
    said = _messages(caught)
    assert bad.test_accuracy < 0.2
    assert len(said) == 1, said  # the collapse alone (its dead classes are not repeated)
    assert "after epoch 1 the network has collapsed" in said[0]
    assert said[0].endswith("learning_rate=3.0 is too large for a hidden layer of 512 units: "
                            "try learning_rate=0.5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        good = portamlp.train(**options, learning_rate=0.5)
    assert _messages(caught) == []
    assert good.test_accuracy > 0.85


def test_a_collapse_that_lasts_is_warned_about_once_with_command_line_advice(capsys, tmp_path):
    from portamlp.cli.main import main

    code = main(["train", "--layers", "784,30,10", "--learning-rate", "100", "--epochs", "3",
                 "--train-length", "2000", "--validation-length", "500", "--test-length",
                 "500", "--seed", "0", "--save", str(tmp_path / "net.json"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("the network has collapsed") == 1, err
    assert "learning_rate=100.0 is too large for a hidden layer of 30 units: try " \
           "--learning-rate 10.0" in err
    assert "never predicts" not in err


def test_a_healthy_run_gives_no_advice(mnist_small):
    x, y, xv, yv = mnist_small
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = portamlp.train(x=x[:2000], y=y[:2000], validation_data=(xv, yv), epochs=2,
                                seed=0, batch_size=7)  # a short last batch is quiet too
    record = result.history[-1]
    assert record.validation_accuracy > 0.8
    assert sum(record.predicted_counts) == sum(record.label_counts) == len(yv)
    assert record.label_counts == np.bincount(np.asarray(yv), minlength=10).tolist()


@pytest.mark.slow
def test_the_default_holds_for_a_wider_hidden_layer():
    """The sigmoid's own initialisation (N(0, 1/n_in)) trains 784-100-10 at the default rate."""
    result = portamlp.train(layers=[784, 100, 10], epochs=1, seed=0)
    assert result.test_accuracy >= 0.94
    assert result.config.init == "auto"


def test_the_original_programs_recipes_keep_its_own_initialisation():
    import runpy
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for example in ("original_program.py", "nielsen.py"):
        source = (root / "examples" / example).read_text()
        assert 'init="normal"' in source, example
    accuracy = runpy.run_path(str(root / "bench" / "accuracy.py"), run_name="not_main")
    for run in accuracy["RUNS"]:
        if run["name"].startswith(("original", "Nielsen")):
            assert run["options"]["init"] == "normal", run["name"]


# ------------------------------------------------------------------ unscaled inputs
def test_unscaled_own_inputs_are_warned_about(mnist_small):
    x, y, _, _ = mnist_small
    raw = np.round(x[:500] * 255).astype(np.uint8)
    with pytest.warns(PortamlpWarning, match=r"x holds values up to 255 in magnitude: it looks "
                                             r"unscaled; .*divide pixels by 255"):
        portamlp.train(x=raw, y=y[:500], epochs=1, seed=0, progress=False)
    wine_like = np.random.default_rng(0).uniform(0, 1680, (60, 13))
    with pytest.warns(PortamlpWarning, match=r"up to 16\d\d in magnitude.*StandardScaler"):
        portamlp.train(x=wine_like, y=np.arange(60) % 3, epochs=1, seed=0)
    standardised = (wine_like - wine_like.mean(0)) / wine_like.std(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        portamlp.train(x=standardised, y=np.arange(60) % 3, epochs=1, seed=0,
                       learning_rate=0.5)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_raw_pixels_for_a_network_that_divides_them_are_warned_about(mnist_small, backend):
    x, y, _, _ = mnist_small
    net = Network.initialize((784, 10, 10), seed=0, backend=backend)
    net.preprocessing = portamlp.datasets.Preprocessing.from_scale(255)
    with pytest.warns(PortamlpWarning, match=r"trained on pixels ÷255: pass "
                                             r"network.preprocessing.apply\(pixels\)"):
        net.evaluate(x[:50] * 255, y[:50])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.evaluate(x[:50], y[:50])
        Network.initialize((784, 10, 10), seed=0).evaluate(x[:50] * 255, y[:50])  # unknown


# ------------------------------------------------------------------ the other findings
def test_network_may_be_a_model_file(tmp_path, mnist_small):
    x, y, _, _ = mnist_small
    first = portamlp.train(x=x[:300], y=y[:300], layers=[784, 12, 10], epochs=1, seed=0)
    path = str(tmp_path / "net.json")
    first.network.save(path)
    again = portamlp.train(x=x[:300], y=y[:300], network=path, epochs=1, seed=0)
    assert again.network.layers == (784, 12, 10)
    expected = portamlp.train(x=x[:300], y=y[:300], network=portamlp.load(path), epochs=1,
                              seed=0)
    np.testing.assert_array_equal(again.network.weights[0], expected.network.weights[0])
    with pytest.raises(FileNotFoundError, match="missing.json"):
        portamlp.train(x=x[:300], y=y[:300], network=tmp_path / "missing.json")
    with pytest.raises(TypeError, match="a portamlp.Network or the path of a model file"):
        portamlp.train(x=x[:300], y=y[:300], network=3)


def test_a_split_of_sorted_rows_is_named_not_taken_for_a_collapse():
    """Sorted rows (wine's are): the last fifth is one class. The run says to shuffle, and
    neither the collapse nor the dead-class advice fires on that validation set."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.3, (40, 4)) for c in range(3)])
    y = np.repeat(np.arange(3), 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        portamlp.train(x=x, y=y, validation_split=0.2, epochs=5, seed=0, learning_rate=1.0)
    said = _messages(caught)
    assert len(said) == 1, said
    assert said[0].startswith("validation_data y holds only class 2: it cannot show how the "
                              "network does across classes; the last rows of x, which "
                              "validation_split takes, are all of one class: shuffle x and y "
                              "together first")


def test_a_given_network_keeps_its_pixel_scaling():
    net = Network.initialize((784, 8, 10), seed=0)
    net.preprocessing = portamlp.datasets.Preprocessing.from_scale(255)
    with pytest.raises(ValueError, match=r"scale='standardize' differs from the given "
                                         r"network's 255.0 \(pixels ÷255\)"):
        portamlp.train(network=net, scale="standardize", epochs=1, train_length=100)


def test_validation_split_takes_the_last_rows(mnist_small):
    x, y, _, _ = mnist_small
    x, y = x[:1000], y[:1000]
    split = portamlp.train(x=x, y=y, validation_split=0.2, epochs=2, seed=0,
                           early_stopping=True, patience=5)
    given = portamlp.train(x=x[:800], y=y[:800], validation_data=(x[800:], y[800:]), epochs=2,
                           seed=0, early_stopping=True, patience=5)
    assert [r.validation_accuracy for r in split.history] == \
        [r.validation_accuracy for r in given.history]
    assert sum(split.history[0].label_counts) == 200
    np.testing.assert_array_equal(split.network.weights[0], given.network.weights[0])
    with pytest.raises(ValueError, match="either validation_data or validation_split"):
        portamlp.train(x=x, y=y, validation_split=0.2, validation_data=(x, y), epochs=1)
    with pytest.raises(ValueError, match="use validation_length"):
        portamlp.train(validation_split=0.2, epochs=1)
    with pytest.raises(ValueError, match=r"validation_split=1.0 must be >= 0.0 and < 1.0"):
        portamlp.train(x=x, y=y, validation_split=1.0, epochs=1)
    with pytest.raises(ValueError, match="leaves 0 to train on"):
        portamlp.train(x=x[:3], y=y[:3], validation_split=0.9, epochs=1, layers=[784, 4, 10])


def test_one_class_labels_are_refused_for_a_new_network():
    x = np.random.default_rng(0).random((20, 4))
    with pytest.raises(ValueError, match="y holds only class 1: there is nothing to learn"):
        portamlp.train(x=x, y=np.ones(20, dtype=np.int64), layers=[4, 3, 2], epochs=1)
    # continuing a network on a batch of one class is an ordinary step
    net = Network.initialize((4, 3, 2), seed=0)
    portamlp.train(x=x, y=np.ones(20, dtype=np.int64), network=net, epochs=1, seed=0)


def test_photo_preparation_has_a_public_home():
    import portamlp.cli.images
    import portamlp.images

    assert portamlp.images.prepare_digit is portamlp.cli.images.prepare_digit
    assert "images" in portamlp.__all__
    blank = np.zeros((28, 28), dtype=np.uint8)
    pytest.importorskip("PIL")
    with pytest.raises(portamlp.images.BlankImageError):
        portamlp.images.prepare_digit(blank)


def test_fashion_mnist_classes_have_names():
    from portamlp.datasets import class_names

    assert class_names("fashion-mnist")[9] == "Ankle boot"
    assert class_names("mnist") == [str(c) for c in range(10)]
    assert class_names("some/folder", 3) == ["0", "1", "2"]
    assert class_names("fashion-mnist", 4) == ["0", "1", "2", "3"]  # not its 10 classes


def test_curves_of_a_short_run_read_right():
    pytest.importorskip("matplotlib")
    from portamlp.cli.plots import history_figure

    one = [dict(epoch=1, train_cost=0.17, validation_cost=0.08, validation_accuracy=0.897)]
    fig = history_figure(one)
    cost, accuracy = fig.axes
    fig.canvas.draw()
    for ax in fig.axes:  # the visible ticks: epoch 1 alone, not 0.95, 0.96, ...
        low, high = ax.get_xlim()
        assert [t for t in ax.get_xticks() if low <= t <= high] == [1.0]
    assert [line.get_label() for line in cost.get_lines()] == [
        "training (mean over the epoch)", "validation (after the epoch)"]
    assert accuracy.get_ylabel() == "accuracy (%)"
    assert accuracy.get_lines()[0].get_ydata()[0] == pytest.approx(89.7)
    # records written before "cost" (train_loss, validation_loss) draw the same
    old = history_figure([dict(epoch=1, train_loss=0.17, validation_loss=0.08,
                               validation_accuracy=0.897)])
    assert len(old.axes[0].get_lines()) == 2


def test_the_misclassified_grid_says_how_to_read_it():
    pytest.importorskip("matplotlib")
    from portamlp.cli.plots import misclassified_figure
    from portamlp.datasets import class_names

    images = np.zeros((3, 784))
    fig = misclassified_figure(images, np.array([9, 1, 2]), np.array([7, 1, 0]),
                               names=class_names("fashion-mnist"),
                               what="fashion-mnist test images")
    assert fig._suptitle.get_text() == ("misclassified fashion-mnist test images (first 2); "
                                        "each titled true → predicted")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["Ankle boot → Sneaker", "Pullover → T-shirt/top"]
