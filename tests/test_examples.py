"""The example scripts and the results benchmark, run with small settings."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(epochs=1, train_length=2000, validation_length=500, test_length=500)


def _example(name):
    return runpy.run_path(str(ROOT / "examples" / name))


def test_original_program_example_trains_tests_and_saves(tmp_path, capsys):
    import portamlp

    path = tmp_path / "orig.json"
    result = _example("original_program.py")["main"](path=str(path), seed=0, **SMALL)
    out = capsys.readouterr().out
    assert "test accuracy" in out and f"saved to {path}" in out
    loaded = portamlp.load(path)
    assert loaded.layers == (784, 16, 16, 10)
    x, y = portamlp.datasets.load_mnist("test", length=500, scale=256)
    assert loaded.evaluate(x, y) == result.test_accuracy


def test_nielsen_example_prints_each_epoch(capsys):
    result = _example("nielsen.py")["main"](**dict(SMALL, epochs=2))
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and "test accuracy" in out
    assert result.network.layers == (784, 30, 10)


def test_gpu_example_runs_on_any_backend(capsys):
    result = _example("gpu.py")["main"]("numpy", **dict(SMALL, epochs=3, batch_size=50))
    assert "trained on numpy" in capsys.readouterr().out
    assert result.test_accuracy > 0.8


@pytest.mark.slow
def test_gpu_example_runs_on_cupy_or_says_what_to_install(capsys):
    """With a usable GPU the example trains on CuPy (no skip); without, it says what to do."""
    import portamlp

    if portamlp.available_backends()["cupy"].usable:
        result = _example("gpu.py")["main"]("cupy", **dict(SMALL, epochs=2, batch_size=50))
        assert "trained on cupy" in capsys.readouterr().out
        assert result.network.backend.name == "cupy" and result.test_accuracy > 0.8
        return
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "gpu.py")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "pip install" in proc.stderr and "Traceback" not in proc.stderr


def test_accuracy_benchmark_quick_run(tmp_path):
    out = tmp_path / "acc.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "accuracy.py"), "--quick",
                           "--only", "row 5", "--original-split", "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "| original row 5: 784-300-100-50-10, 1 epoch | 2 |" in proc.stdout
    assert "88.9% (1,691 s)" in proc.stdout and "class 5 never predicted" in proc.stdout
    data = json.loads(out.read_text())
    assert data["quick"] and data["original_split"] and len(data["rows"]) == 1
    row = data["rows"][0]
    assert row["options"]["layers"] == [784, 300, 100, 50, 10]
    assert all(0 < a <= 1 for a in row["test_accuracy"] + row["original_split_accuracy"])
    assert row["published"] == [0.889, 1691]


@pytest.mark.slow
def test_accuracy_benchmark_reads_the_recipes_from_their_files(tmp_path):
    out = tmp_path / "acc.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "accuracy.py"), "--quick",
                           "--only", "recipe examples/mnist", "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(out.read_text())["rows"][0]
    assert row["options"]["dropout"] > 0 and row["budget_minutes"] == 15
    assert row["goal"] == 0.988 and isinstance(row["within_budget"], bool)
