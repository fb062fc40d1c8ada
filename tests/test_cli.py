"""The portamlp command end to end (through ``main(argv)``, and as a process where the process
itself is under test), and its one-line errors."""

import json
import os

import numpy as np
import pytest
from cli_helpers import run

import portamlp

SMALL = ["--train-length", "2000", "--validation-length", "500", "--test-length", "500",
         "--epochs", "2", "--seed", "3"]




@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    proc = run("train", *SMALL, "--layers", "784,32,10", "--activation", "relu", "--cost",
               "cross_entropy", "--learning-rate", "0.1", "--save", "net.json", "--backend",
               "numpy", cwd=d)
    return d, proc


def test_train_saves_model_and_run_record(trained):
    d, proc = trained
    assert (d / "net.json").is_file() and (d / "net.run.json").is_file()
    assert proc.stdout.count("epoch ") == 2 and "test accuracy:" in proc.stdout
    record = json.loads((d / "net.run.json").read_text())
    assert record["options"]["layers"] == [784, 32, 10] and record["options"]["seed"] == 3
    assert record["backend"] == "numpy" and record["device"] == "cpu"
    assert len(record["history"]) == 2 and record["environment"]["packages"]["numpy"]
    assert 0.8 < record["test_accuracy"] <= 1.0
    assert f"{record['test_accuracy']:.2%}" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_evaluate_matches_the_python_api(trained):
    d, _ = trained
    proc = run("evaluate", "net.json", "--json", cwd=d)
    report = json.loads(proc.stdout)
    net = portamlp.load(d / "net.json")
    x, y = portamlp.datasets.load_mnist("test")
    assert report["accuracy"] == pytest.approx(net.evaluate(x, y), abs=1e-12)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert np.trace(matrix) / 10_000 == pytest.approx(report["accuracy"])
    text = run("evaluate", "net.json", cwd=d).stdout
    assert f"accuracy: {report['accuracy']:.2%}" in text and "true\\pred" in text


@pytest.mark.slow
def test_evaluate_plots(trained):
    d, _ = trained
    run("evaluate", "net.json", "--plot", "figs", "--length", "2000", cwd=d)
    for name in ("confusion.png", "misclassified.png"):
        data = (d / "figs" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_predict_a_png_of_a_test_image(trained):
    from portamlp.backends import to_numpy
    from portamlp.images import digit_to_png

    d, _ = trained
    images, labels = portamlp.datasets.read_split("mnist", "test")
    net = portamlp.load(d / "net.json")
    x, _ = portamlp.datasets.load_mnist("test", length=50)
    predicted = to_numpy(net.predict(x))  # on the default backend's device
    ok = np.flatnonzero(predicted == labels[:50])  # images the network gets right
    for i in ok[:3]:
        digit_to_png(images[i], d / f"digit{i}.png")  # dark ink on white, 4x larger
        out = run("predict", "net.json", f"digit{i}.png", "--json", cwd=d).stdout
        result = json.loads(out)[0]
        assert result["prediction"] == labels[i]
        assert abs(sum(result["probabilities"]) - 1) < 1e-4
    out = run("predict", "net.json", "--index", "0", cwd=d).stdout
    assert out.startswith("test image 0: ") and f"(label {labels[0]})" in out


def test_plot_writes_training_curves(trained):
    d, _ = trained
    run("plot", "net.run.json", "-o", "curves.png", cwd=d)
    assert (d / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert run("plot", "net.run.json", "-o", "curves.png", cwd=d, check=False).returncode == 2


@pytest.mark.slow
def test_info_lists_backends(tmp_path):
    out = run("info", cwd=tmp_path).stdout
    assert "numpy             usable" in out and "cupy" in out and "auto selects" in out
    data = json.loads(run("info", "--json", cwd=tmp_path).stdout)
    assert data["backends"]["numpy"] == {"usable": True, "reason": "usable"}
    assert data["auto"] in ("numpy", "cupy")


def test_config_file_and_flags_override(tmp_path):
    (tmp_path / "run.toml").write_text(
        'layers = "784,16,10"\nepochs = 5\ntrain_length = 500\nvalidation_length = 0\n'
        'test_length = 100\nlearning_rate = 0.5\ncost = "cross_entropy"\n')
    proc = run("train", "--config", "run.toml", "--epochs", "1", "--json", "--save", "c.json",
               "--seed", "0", cwd=tmp_path)
    record = json.loads(proc.stdout)
    assert record["options"]["layers"] == [784, 16, 10] and record["options"]["epochs"] == 1
    assert len(record["history"]) == 1 and record["options"]["cost"] == "cross_entropy"
    assert record["fast_step"] is False  # NumPy: the portable step trained


def test_errors_name_the_config_file_for_its_options_and_flags_for_flags(tmp_path):
    (tmp_path / "run.toml").write_text('fast_path = "on"\nepochs = 1\n')
    proc = run("train", "--config", "run.toml", "--backend", "numpy", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "fast_path='on' cannot be honoured" in proc.stderr
    assert "(fast_path is set in run.toml)" in proc.stderr and "--fast-path" not in proc.stderr
    proc = run("train", "--config", "run.toml", "--fast-path", "on", "--backend", "numpy",
               cwd=tmp_path, check=False)
    assert "--fast-path 'on' cannot be honoured" in proc.stderr and "run.toml" not in proc.stderr


@pytest.mark.slow
def test_no_arguments_runs_the_default_configuration(tmp_path):
    """`portamlp` alone: Nielsen's network, 5 epochs on the full embedded MNIST (a few seconds)."""
    env = dict(os.environ, PORTAMLP_BACKEND="numpy")
    proc = run(cwd=tmp_path, env=env, process=True)  # the installed command, as a user runs it
    assert proc.stdout.count("epoch ") == 5 and "test accuracy:" in proc.stdout
    saved = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(saved) == 2 and saved[0].startswith("mnist-784-30-10-")
    record = json.loads((tmp_path / "runs" / saved[1]).read_text())
    assert record["options"]["train_length"] is None and record["options"]["batch_size"] == 10
    # A fresh seed each run: N(0, 1) sigmoid networks sometimes lose a class or two (each costs
    # about 8 points), so only "it learned" is asserted here, far above chance (10 %).
    assert record["test_accuracy"] > 0.6


@pytest.mark.parametrize("args, message", [
    (["evaluate", "missing.json"], "missing.json: no such model file"),
    (["evaluate", "bad.json"], "bad.json: missing field 'format'"),
    (["train", "--activation", "swish", "--epochs", "1"], "unknown activation 'swish'"),
    (["train", "--epochs", "1", "--save", "exists.json"], "exists.json already exists"),
    (["predict", "net.json", "notes.png"], "notes.png: not an image file"),
    (["train", "--layers", "784,x,10"], "'784,x,10' is not a comma-separated list"),
    (["train", "--backend", "cupy-typo"], "unknown backend 'cupy_typo'"),
    (["predict", "net.json", "--index", "10000"], "--index 10000 is out of range"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, args, message):
    net = portamlp.Network.initialize((784, 10), seed=0, backend="numpy")
    net.save(tmp_path / "net.json")
    (tmp_path / "bad.json").write_text('{"weights": []}')
    (tmp_path / "exists.json").write_text("keep me")
    (tmp_path / "notes.png").write_text("not a picture")
    proc = run(*args, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2  # argparse adds a usage line
    assert (tmp_path / "exists.json").read_text() == "keep me"


def test_debug_shows_the_traceback(tmp_path):
    # the process: Python prints the traceback as the exception leaves it
    proc = run("evaluate", "missing.json", "--debug", cwd=tmp_path, check=False, process=True)
    assert "Traceback" in proc.stderr and "FileNotFoundError" in proc.stderr


def test_help_shows_examples(tmp_path):
    out = run("train", "--help", cwd=tmp_path).stdout
    assert "examples:" in out and "--learning-rate" in out and "--batch-size" in out
    for flag in ("--layers", "--train-length", "--validation-length", "--test-length",
                 "--seed", "--dtype", "--dataset", "--backend", "--config", "--quiet", "--json"):
        assert flag in out


# ---------------------------------------------------------- defects found in review (issue 10)
@pytest.mark.slow
def test_resume_without_save_names_the_output_after_the_checkpointed_run(tmp_path):
    run("train", "--layers", "784,12,10", "--train-length", "500", "--validation-length", "0",
        "--test-length", "100", "--epochs", "1", "--seed", "0", "--checkpoint", "ck",
        "--save", "first.json", "--quiet", cwd=tmp_path)
    run("train", "--resume", "ck", "--epochs", "2", "--quiet", cwd=tmp_path)
    saved = sorted(p.name for p in (tmp_path / "runs").glob("*.json")
                   if not p.name.endswith(".run.json"))
    assert len(saved) == 1 and saved[0].startswith("mnist-784-12-10-"), saved


def test_predict_has_no_length_flag(trained):
    d, _ = trained
    proc = run("predict", "net.json", "--index", "0", "--length", "5", cwd=d, check=False)
    assert proc.returncode == 2 and "unrecognized arguments: --length" in proc.stderr


def test_misclassified_grid_draws_other_square_sizes_and_refuses_vectors(tmp_path):
    pytest.importorskip("matplotlib")
    from portamlp.cli.plots import plot_misclassified

    rng = np.random.default_rng(0)
    truth, predicted = np.array([0, 1, 2, 3]), np.array([0, 2, 2, 1])
    for side in (8, 28, 32):
        path = tmp_path / f"grid{side}.png"
        plot_misclassified(rng.random((4, side * side)), truth, predicted, path)
        assert path.read_bytes()[:4] == b"\x89PNG"
    plot_misclassified(rng.random((4, 8, 8)), truth, predicted, tmp_path / "unflat.png")
    with pytest.raises(ValueError, match="cannot draw rows of 10 features as images"):
        plot_misclassified(rng.random((4, 10)), truth, predicted, tmp_path / "no.png")


def test_flags_are_exact_as_options_are(tmp_path, capsys):
    """A prefix is not a flag (argparse would take ``--epoch`` for ``--epochs``)."""
    proc = run("train", "--epoch", "3", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "unrecognized arguments: --epoch 3 (did you mean '--epochs'?)" in proc.stderr
    from portamlp.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "--lr", "0.1"])
    assert exit_.value.code == 2
    assert "--lr 0.1 (did you mean '--learning-rate'?)" in capsys.readouterr().err
