"""Every command and code block in the README runs (with small settings where it trains)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import portamlp
from portamlp.backends import LIBRARIES
from portamlp.nn.activations import ACTIVATIONS
from portamlp.nn.costs import COSTS
from portamlp.nn.init import INITS
from portamlp.training.optimizers import OPTIMIZERS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
SMALL_FLAGS = ["--train-length", "2000", "--validation-length", "500", "--test-length", "500",
               "--epochs", "1"]
SMALL = dict(train_length=2000, validation_length=500, test_length=500, epochs=1)


def _cli_lines():
    return [line for lang, body in BLOCKS if lang == "bash" for line in body.splitlines()
            if line.startswith("portamlp")]


def test_readme_shows_the_two_setup_commands():
    bash = [body.strip() for lang, body in BLOCKS if lang == "bash"]
    assert "pip install . && portamlp" in bash[0]
    assert bash[1] == 'pip install -e ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and 'pip install --quiet -e ".[test]"' in ci


@pytest.mark.slow
def test_command_line_section_runs_in_order(tmp_path):
    lines = _cli_lines()
    assert len(lines) >= 5
    for line in lines:
        args = shlex.split(line)[1:]
        if args and args[0] == "train":
            args += SMALL_FLAGS
        proc = subprocess.run([sys.executable, "-m", "portamlp", *args], cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "net.json").is_file() and (tmp_path / "curves.png").is_file()
    assert (tmp_path / "figures" / "confusion.png").is_file()


#: Blocks that start other processes (MPI ranks, a Dask cluster, a grid search's workers).
_SLOW_BLOCKS = ('distributed="mpi"', "LocalCluster", "GridSearchCV")


@pytest.mark.parametrize("index", [
    pytest.param(i, marks=[pytest.mark.slow] if any(k in code for k in _SLOW_BLOCKS) else [])
    for i, (lang, code) in enumerate(BLOCKS) if lang == "python"])
def test_python_blocks_run(index, tmp_path, monkeypatch):
    code = BLOCKS[index][1]
    real_train = portamlp.train
    gpu = portamlp.available_backends()["cupy"].usable

    def small_train(**kwargs):
        if kwargs.get("backend") == "cupy" and not gpu:
            kwargs["backend"] = "numpy"  # the identical code path, on the CPU here
        return real_train(**{**kwargs, **SMALL})

    monkeypatch.chdir(tmp_path)
    if 'distributed="mpi"' in code:  # a script for mpiexec: run it there, on 2 ranks
        _run_under_mpiexec(code, tmp_path)
        return
    if "dask" in code:
        pytest.importorskip("dask.distributed", reason='pip install "portamlp[dask]"')
    monkeypatch.setattr(portamlp, "train", small_train)
    if "import jax" in code:
        pytest.importorskip("jax", reason='pip install "portamlp[jax]"')
    if "torch" in code:
        pytest.importorskip("torch")
        pytest.importorskip("safetensors")
    if "fashion-mnist" in code or "read_idx" in code:
        _fake_fashion(tmp_path, monkeypatch)
    if "onnxruntime" in code:  # the ONNX Runtime script runs next to an export, as written
        pytest.importorskip("ndonnx", reason='pip install "portamlp[onnx]"')
        real_train(**SMALL, layers=(784, 10), cost="cross_entropy").network.to_onnx(
            tmp_path / "net.onnx")
    registries = (ACTIVATIONS, COSTS, INITS, OPTIMIZERS, LIBRARIES)
    saved = [dict(r) for r in registries]  # a block may register entries: for itself only
    try:
        exec(compile(code, f"README block {index}", "exec"), {"__name__": "__main__"})
    finally:
        for registry, entries in zip(registries, saved):
            registry.clear()
            registry.update(entries)


def _run_under_mpiexec(code: str, tmp_path: Path) -> None:
    """``mpiexec -n 2 python`` the block, with the same small settings as the other blocks."""
    import shutil

    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or \
        shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip('mpiexec not found: pip install "portamlp[mpi]"')
    pytest.importorskip("mpi4py", reason='pip install "portamlp[mpi]"')
    (tmp_path / "block.py").write_text(code)
    (tmp_path / "wrapper.py").write_text(
        "import portamlp\n"
        "real = portamlp.train\n"
        f"portamlp.train = lambda **kw: real(**{{**kw, **{SMALL!r}}})\n"
        "exec(compile(open('block.py').read(), 'README block', 'exec'), "
        "{'__name__': '__main__'})\n")
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, "wrapper.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _fake_fashion(tmp_path, monkeypatch):
    """A small data set laid out like Fashion-MNIST's, found through $PORTAMLP_DATA, and an
    IDX file in the working directory (what the README's data-set block reads)."""
    import numpy as np

    from portamlp.datasets import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    for split, n in (("train", 120), ("t10k", 20)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        (folder / "train-images-idx3-ubyte.gz").read_bytes())
    monkeypatch.setenv("PORTAMLP_DATA", str(tmp_path / "data"))


@pytest.mark.skipif(os.environ.get("PORTAMLP_SKIP_INSTALL_TEST") == "1",
                    reason="PORTAMLP_SKIP_INSTALL_TEST=1")
@pytest.mark.slow
def test_fresh_install_command(tmp_path):
    """The README's first set-up command, verbatim, on a copy of the repository."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if files.returncode != 0 or not files.stdout:
        pytest.skip("not a git checkout")
    copy = tmp_path / "repo"
    for name in files.stdout.splitlines():
        src = ROOT / name
        if src.is_file():
            dst = copy / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    command = [body.strip() for lang, body in BLOCKS if lang == "bash"][0]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not p.startswith(sys.prefix))
    env["PORTAMLP_BACKEND"] = "numpy"
    proc = subprocess.run(["bash", "-c", command], cwd=copy, capture_output=True, text=True,
                          env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "test accuracy:" in proc.stdout
    assert len(list((copy / "runs").glob("*.run.json"))) == 1
