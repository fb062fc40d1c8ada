"""The benchmark scripts run (tiny settings) and report what they promise; no timing asserted."""

import json
import sys
from pathlib import Path

import pytest
from cli_helpers import run_bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


_run = run_bench


@pytest.mark.slow
def test_compare_quick_reports_ratios_memory_and_import(tmp_path):
    out_file = tmp_path / "compare.json"
    out = _run("compare.py", "--quick", "--only", "784-30-10", "--output", str(out_file))
    assert "OPENBLAS_CORETYPE is" in out and "| portamlp |" in out and "| numpy floor |" in out
    report = json.loads(out_file.read_text())
    row = report["rows"][0]["results"]
    assert row["portamlp"]["ratio_to_portamlp"] == 1.0
    assert row["numpy floor"]["seconds_per_epoch"] > 0
    assert 0 < report["full_run_memory"]["peak_rss_mb"] < 10_000
    assert report["import"]["heavy_modules"] == []
    assert {r["peer"] for r in report["busy_core"]} >= {"portamlp, default threads",
                                                         "numpy floor, 2 BLAS threads"}
    assert set(report["time_to_98"]) == {"settings", "portamlp", "floor"}


@pytest.mark.slow
def test_defaults_benchmark_reports_the_runs_and_the_advice(tmp_path):
    out_file = tmp_path / "defaults.json"
    out = _run("defaults.py", "--quick", "--output", str(out_file))
    assert "default run (784-30-10, 5 epochs)" in out and "init='normal'" in out
    report = json.loads(out_file.read_text())
    assert set(report["784-100-10"]) == {"auto", "normal"}
    collapsed = report["widths"][0]  # η = 100 on 30 units: the warning names η = 10
    assert collapsed["named_rate"] == 10.0 and "has collapsed" in collapsed["advice"][0]


@pytest.mark.slow
def test_jax_compare_reports_every_side_and_the_compile_time(tmp_path):
    pytest.importorskip("jax", reason='pip install "portamlp[jax]"')
    pytest.importorskip("torch")
    out_file = tmp_path / "jax.json"
    out = _run("jax_compare.py", "--quick", "--output", str(out_file))
    assert "compiled JAX / plain NumPy loop:" in out and "compiling the JAX epoch:" in out
    first, second = json.loads(out_file.read_text())["rows"]
    assert set(first["seconds"]) == {"jax compiled", "numpy loop", "portamlp numpy",
                                     "jax uncompiled"}
    assert set(second["seconds"]) == {"jax compiled", "portamlp numpy", "pytorch eager"}
    assert all(s > 0 for s in first["compile_seconds"] + second["compile_seconds"])
    # the same seed and data: the compiled epoch learns what portamlp on NumPy learns
    assert first["accuracy"]["jax compiled"] == pytest.approx(
        first["accuracy"]["portamlp numpy"], abs=0.02)
    runs = json.loads(out_file.read_text())["first_run"]
    assert [r["backend"] for r in runs] == ["jax", "jax", "numpy"]
    assert runs[0]["compile"] > 0 and runs[2]["compile"] == 0
    assert runs[0]["test_accuracy"] == pytest.approx(runs[2]["test_accuracy"], abs=0.02)


@pytest.mark.slow
def test_versions_compares_this_tree_with_a_revision_in_fresh_processes(tmp_path):
    out_file = tmp_path / "versions.json"
    out = _run("versions.py", "--quick", "--against", "HEAD", "--output", str(out_file))
    report = json.loads(out_file.read_text())
    assert set(report["results"]) == {"784-30-10, sigmoid, quadratic, batch 10",
                                      "784-100-50-10, sigmoid, quadratic, batch 10",
                                      "784-256-128-10, ReLU, cross-entropy, momentum, batch 128"}
    for name, row in report["results"].items():
        assert row["old"] > 0 and row["new"] > 0 and row["ratio"] == row["new"] / row["old"]
        assert f"{name}: HEAD " in out


@pytest.mark.slow
def test_gpu_script_runs_without_a_gpu(tmp_path):
    import portamlp

    out_file = tmp_path / "gpu.json"
    out = _run("gpu.py", "--quick", "--output", str(out_file))
    report = json.loads(out_file.read_text())
    names = set().union(*(r["results"] for r in report["rows"]))
    assert "portamlp (numpy, host CPUs)" in names
    cupy_rows = {"portamlp fast step (cupy)", "portamlp portable step (cupy)"}
    if portamlp.available_backends()["cupy"]:
        assert cupy_rows <= names  # a GPU is here: the CuPy rows ran
    else:
        assert "portamlp fast step (cupy): skipped" in out and not cupy_rows & names
    for row in report["rows"]:
        result = row["results"]["portamlp (numpy, host CPUs)"]
        assert result["tflops"] > 0 and result["seconds_per_epoch"] > 0
        assert 0.0 <= result["test_accuracy"] <= 1.0


def test_training_flops_counts_forward_and_backward():
    from gpu import training_flops

    # 2-layer 4-3-2: products 12 and 6; forward 2*18, weight grads 2*18, input grads 2*6
    assert training_flops((4, 3, 2), 10) == 10 * (36 + 36 + 12)


def test_floor_learns():
    import floor
    import numpy as np

    import portamlp

    x, y = portamlp.datasets.load_mnist("train", length=3000, backend="numpy")
    xt, yt = portamlp.datasets.load_mnist("test", length=500, backend="numpy")
    rng = np.random.default_rng(0)
    ws, bs = floor.init((784, 30, 10), rng, he=True)
    vs = [(np.zeros_like(w), np.zeros_like(b)) for w, b in zip(ws, bs)]
    for _ in range(3):
        floor.train_epoch(x, np.eye(10, dtype=np.float32)[y], ws, bs, vs, lr=0.05, batch=20,
                          rng=rng, relu=True, softmax=True, mu=0.9)
    assert floor.accuracy(xt, yt, ws, bs, relu=True) > 0.85


@pytest.mark.slow
def test_load_benchmark_reports_stages_and_memory(tmp_path):
    out_file = tmp_path / "load.json"
    out = _run("load_mnist.py", "--repeat", "1", "--out", str(out_file))
    assert "total, end to end" in out and "peak RSS increase" in out
    report = json.loads(out_file.read_text())
    best = report["best_seconds"]
    assert set(best) >= {"total"} and all(v > 0 for v in best.values())
    memory = report["memory"]
    assert memory["final_bytes"] == 70_000 * 784 * 4 + 70_000 * 8  # float32 pixels, int64 labels
    assert memory["ratio_rss"] > 0 and isinstance(report["meets_targets"], bool)
    assert report["targets"] == {"total_seconds": 1.0, "memory_ratio": 2.5}


@pytest.mark.slow
def test_profile_script_prints_a_call_tree():
    pytest.importorskip("pyinstrument")
    out = _run("profile_step.py", "--epochs", "1")
    # the portable step's backprop, or on a GPU the fast step's epoch
    assert ("backprop" in out or "_fast_epoch" in out) and "seconds per epoch" in out


def test_gpu_check_reports_what_it_could_do(tmp_path):
    """Without a GPU the one-shot check says "no GPU: skipped"; with one, it checks agreement,
    an epoch without synchronisation and the second device (the suite and the table it would
    also run are left out here: the suite is this very test run)."""
    import portamlp

    out = tmp_path / "check"
    gpu = portamlp.available_backends()["cupy"].usable
    text = _run("gpu_check.py", "--output", str(out), *(["--skip-suite", "--skip-bench"]
                                                         if gpu else []))
    report = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".txt").read_text().strip() in text
    if gpu:
        assert report["status"] == "passed", text
        assert all(a["ok"] for a in report["agreement"].values())
    else:
        assert report["status"] == "no GPU: skipped" and report["reason"]
        assert "no GPU: skipped" in text


@pytest.mark.slow
def test_dropout_benchmark_compares_against_numpys_generator(tmp_path):
    out_file = tmp_path / "dropout.json"
    out = _run("dropout.py", "--quick", "--output", str(out_file))
    assert "plain NumPy loop (NumPy's generator)" in out
    report = json.loads(out_file.read_text())
    rows = {(r["dropout"], r["input_dropout"]): r for r in report["rows"]}
    assert set(rows) == {(0.0, 0.0), (0.5, 0.2)}
    for r in rows.values():
        assert r["ratio"] == pytest.approx(r["portamlp_seconds"] / r["floor_seconds"])
    assert report["target"] == 1.2 and isinstance(report["meets_target"], bool)


def test_distortions_benchmark_compares_each_distortion_with_none(tmp_path):
    out_file = tmp_path / "distortions.json"
    out = _run("distortions.py", "--quick", "--output", str(out_file))
    report = json.loads(out_file.read_text())
    rows = {r["distortions"]: r for r in report["rows"]}
    assert list(rows)[0] == "none" and rows["none"]["ratio"] == 1.0 and len(rows) == 4
    for r in rows.values():
        assert r["ratio"] == pytest.approx(r["seconds"] / rows["none"]["seconds"])
    assert report["target"] == 1.3 and "target ≤ 1.3×" in out
    assert report["meets_target"] == (max(r["ratio"] for r in rows.values()) <= 1.3)


def test_recipe_search_never_loads_the_test_set(tmp_path, monkeypatch):
    import recipes

    import portamlp

    loaded = []
    real = portamlp.datasets.read_split

    def spy(name, split, *args, **kwargs):
        loaded.append(split)
        return real(name, split, *args, **kwargs)

    monkeypatch.setattr("portamlp.datasets.read_split", spy)
    monkeypatch.setattr("portamlp.datasets.sources.read_split", spy)
    monkeypatch.setattr(sys.modules["portamlp.training.data"], "read_split", spy)
    report = recipes.main(["--quick", "--only", "lr 0.1, 60", "--output",
                           str(tmp_path / "r.json")])
    assert report["rows"] and "test" not in loaded and "train" in loaded
    assert all(0 < r["final"] <= 1 for r in report["rows"])
