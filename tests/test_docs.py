"""The README and the documentation: every example runs as written (with small settings where it
trains), docstring examples give the output they show, links between pages resolve, the README
keeps its set-up commands and stays short, and the pages generated at build time list every
public name. CI also builds the site with warnings as errors (``.ci/run``)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docs_examples import DOCS, ROOT, Example, blocks, docs_extension, examples, page_id, pages

import portamlp
from portamlp.backends import LIBRARIES
from portamlp.nn.activations import ACTIVATIONS
from portamlp.nn.costs import COSTS
from portamlp.nn.init import INITS
from portamlp.training.optimizers import OPTIMIZERS

README = ROOT / "README.md"
SMALL_FLAGS = ["--train-length", "2000", "--validation-length", "500", "--test-length", "500",
               "--epochs", "1"]
SMALL = dict(train_length=2000, validation_length=500, test_length=500, epochs=1)
#: Examples that start other processes (MPI ranks, a Dask cluster, a grid search's workers).
_SLOW = ('distributed="mpi"', "LocalCluster", "GridSearchCV")


# ------------------------------------------------------------------------------ the README
def test_readme_shows_the_two_setup_commands():
    bash = [body.strip() for lang, body, _ in blocks(README.read_text()) if lang == "bash"]
    assert "pip install . && portamlp" in bash[0]
    assert bash[1] == 'pip install -e ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and 'pip install --quiet -e ".[test]"' in ci
    assert re.search(r"^python -m sphinx -W .*-b html docs docs/_build/html$", ci, flags=re.M)


def test_readme_is_short_and_links_every_guide_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[^)#]+)", text))
    for page in pages()[1:]:
        rel = page_id(page)
        if rel not in ("docs/index.md", "docs/guide/index.md"):
            assert rel in linked, f"the README does not link {rel}"


def _links(page: Path):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if not re.match(r"[a-z]+:", target):
            yield target


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_links_between_pages_resolve(page):
    """Relative links point at files of the repository, and their #anchors at headings."""
    for target in _links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page_id(page)}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page_id(page)}: no heading #{anchor} in {path}"


def _anchors(page: Path) -> set[str]:
    """GitHub's and MyST's anchors of a page's headings (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


# ------------------------------------------------------------------ examples of every page
def _marks(page: Path):
    found = examples(page)
    slow = any(e.kind == "command" or any(k in e.code for k in _SLOW) for e in found)
    return [pytest.mark.slow] if slow else []


def _missing(*modules: str) -> str | None:
    for module in modules:
        if importlib.util.find_spec(module.split(".")[0]) is None or (
                "." in module and importlib.util.find_spec(module) is None):
            return f"{module} is not installed"
    return None


def _cannot_run(example: Example) -> str | None:
    """Why this example cannot run on this machine, or None."""
    code = example.code
    assert example.needs in (None, "cuda"), \
        f"line {example.line}: '# needs: {example.needs}' is not a known need (cuda)"
    if example.needs == "cuda" and not portamlp.available_backends()["cupy"].usable:
        return "needs a CUDA GPU with CuPy"
    if example.kind == "command":
        args = shlex.split(code, comments=True)[1:]
        if code.startswith("mpiexec"):
            return 'mpiexec not found: pip install "portamlp[mpi]"' if _mpiexec() is None \
                else _missing("mpi4py")
        if args[:1] == ["export"]:
            return _missing("ndonnx", "onnxruntime")
        if any(a.endswith(".png") for a in args) or "--plot" in args or args[:1] == ["plot"]:
            return _missing("matplotlib", "PIL")
        return None
    if 'distributed="mpi"' in code:
        if _mpiexec() is None:
            return 'mpiexec not found: pip install "portamlp[mpi]"'
        return _missing("mpi4py")
    needs = [("dask", "dask.distributed"), ("import jax", "jax"), ("torch", "torch"),
             ("safetensors", "safetensors"), ("onnxruntime", "onnxruntime"),
             ("sklearn", "sklearn"), ("portamlp.images", "PIL")]
    return _missing(*(module for word, module in needs if word in code))


def _mpiexec() -> str | None:
    return shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or \
        shutil.which("mpiexec")


@pytest.mark.parametrize("page", [pytest.param(p, id=page_id(p), marks=_marks(p))
                                  for p in pages() if examples(p)])
def test_page_examples_run(page, tmp_path, monkeypatch):
    """A reader's session: the page's examples in order, in one empty folder."""
    monkeypatch.chdir(tmp_path)
    text = page.read_text()
    _provide_inputs(text, tmp_path, monkeypatch)
    ran, skipped = 0, []
    for example in examples(page):
        reason = _cannot_run(example)
        if reason:
            skipped.append(f"line {example.line}: {reason}")
            continue
        where = f"{page_id(page)}, line {example.line}"
        if example.kind == "command":
            _run_command(example.code, tmp_path, where)
        elif 'distributed="mpi"' in example.code:
            _run_under_mpiexec(example.code, tmp_path, where)
        else:
            _run_python(example.code, where, monkeypatch)
        ran += 1
    if page == README:  # the command-line quick start made what it says
        assert (tmp_path / "net.json").is_file() and (tmp_path / "curves.png").is_file()
        assert (tmp_path / "figures" / "confusion.png").is_file()
    if skipped:
        pytest.skip(f"{ran} examples ran; not here: " + "; ".join(skipped))


def _provide_inputs(text: str, folder: Path, monkeypatch) -> None:
    """What the reader brings: Fashion-MNIST's files (a small stand-in), an IDX file."""
    if "fashion-mnist" in text or "read_idx" in text:
        _fake_fashion(folder, monkeypatch)


def _run_command(line: str, folder: Path, where: str) -> None:
    """``portamlp ...`` in this environment; ``mpiexec -n N portamlp ...`` and ``mpiexec -n N
    python -m ...`` with this environment's mpiexec and Python. Training gets small settings."""
    words = shlex.split(line, comments=True)
    launcher = []
    if words[0] == "mpiexec":
        launcher = [_mpiexec(), *words[1:3]]  # -n N
        words = words[3:]
    if words[0] == "python":
        command = [sys.executable, *words[1:]]
    else:
        args = words[1:]
        if args[:1] == ["train"]:
            args += SMALL_FLAGS
        command = [sys.executable, "-m", "portamlp", *args]
    proc = subprocess.run([*launcher, *command], cwd=folder, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{where}: {line}\n{proc.stdout}\n{proc.stderr}"


def _run_python(code: str, where: str, monkeypatch) -> None:
    real_train = portamlp.train
    gpu = portamlp.available_backends()["cupy"].usable

    def small_train(**kwargs):
        if kwargs.get("backend") == "cupy" and not gpu:
            kwargs["backend"] = "numpy"  # the identical code path, on the CPU here
        return real_train(**{**kwargs, **SMALL})

    registries = (ACTIVATIONS, COSTS, INITS, OPTIMIZERS, LIBRARIES)
    saved = [dict(r) for r in registries]  # a block may register entries: for itself only
    monkeypatch.setattr(portamlp, "train", small_train)
    try:
        exec(compile(code, where, "exec"), {"__name__": "__main__"})
    finally:
        monkeypatch.setattr(portamlp, "train", real_train)
        for registry, entries in zip(registries, saved):
            registry.clear()
            registry.update(entries)


def _run_under_mpiexec(code: str, folder: Path, where: str) -> None:
    """``mpiexec -n 2 python`` the block, with the same small settings as the other blocks."""
    (folder / "block.py").write_text(code)
    (folder / "wrapper.py").write_text(
        "import portamlp\n"
        "real = portamlp.train\n"
        f"portamlp.train = lambda **kw: real(**{{**kw, **{SMALL!r}}})\n"
        f"exec(compile(open('block.py').read(), {where!r}, 'exec'), "
        "{'__name__': '__main__'})\n")
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "wrapper.py"], cwd=folder,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{where}\n{proc.stdout}{proc.stderr}"


def _fake_fashion(folder: Path, monkeypatch) -> None:
    """A small data set laid out like Fashion-MNIST's, found through $PORTAMLP_DATA, and an
    IDX file in the working directory (what the data-set example reads)."""
    import numpy as np

    from portamlp.datasets import write_idx

    rng = np.random.default_rng(0)
    data = folder / "data" / "fashion-mnist"
    data.mkdir(parents=True)
    for split, n in (("train", 120), ("t10k", 20)):
        write_idx(data / f"{split}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        (data / "train-images-idx3-ubyte.gz").read_bytes())
    monkeypatch.setenv("PORTAMLP_DATA", str(folder / "data"))


def test_python_examples_save_with_overwrite():
    """Run twice, an example replaces its own files: every ``.save(`` says overwrite=True."""
    calls = [call for page in pages() for e in examples(page) if e.kind == "python"
             for call in re.findall(r"\.save\(([^)]*)\)", e.code)]
    assert calls
    for call in calls:
        assert "overwrite=True" in call, call


# -------------------------------------------------------------------- docstring examples
_FLOAT = re.compile(r"(?<![\w.])(-?\d+\.(\d+))(?:e[-+]?\d+)?")


class NumberChecker(doctest.OutputChecker):
    """A float in the expected output matches any float within one unit of its last written
    digit (``0.89`` accepts 0.88 to 0.90): printed accuracies and costs vary in their last
    digits with the BLAS library and its threads."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if super().check_output(want, got, optionflags):
            return True
        wants, gots = list(_FLOAT.finditer(want)), list(_FLOAT.finditer(got))
        if not wants or len(wants) != len(gots):
            return False
        pieces, last = [], 0
        for w, g in zip(wants, gots):
            close = abs(float(w.group(0)) - float(g.group(0))) <= 10.0 ** -len(w.group(2))
            pieces += [got[last:g.start()], w.group(0) if close else g.group(0)]
            last = g.end()
        return super().check_output(want, "".join(pieces) + got[last:], optionflags)


def _doctest_modules() -> list[str]:
    """The public modules whose source holds ``>>>`` examples (only those are imported here:
    importing portamlp.distributed.mpi, for one, starts MPI)."""
    found = []
    for name in docs_extension().public_modules():
        spec = importlib.util.find_spec(name)
        if spec and spec.origin and ">>>" in Path(spec.origin).read_text(encoding="utf-8"):
            found.append(name)
    return found


@pytest.mark.parametrize("name", _doctest_modules())
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # a module of an extra that is not installed here
        pytest.skip(str(exc))
    runner = doctest.DocTestRunner(checker=NumberChecker(),
                                   optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    # an object re-exported by its package is found there too: run each docstring once
    tests = [t for t in tests if t.name.startswith(name + ".") or t.name == name]
    assert tests
    for test in tests:
        runner.run(test, out=lambda s: None)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed " \
        f"(run python -m doctest -v on {module.__file__})"


def test_number_checker_tolerates_last_digits_only():
    checker, flags = NumberChecker(), doctest.NORMALIZE_WHITESPACE
    assert checker.check_output("0.89\n", "0.8943\n", flags)
    assert checker.check_output("(0.10, 'x')\n", "(0.1028, 'x')\n", flags)
    assert not checker.check_output("0.89\n", "0.87\n", flags)
    assert not checker.check_output("0.89 a\n", "0.89 b\n", flags)
    assert not checker.check_output("1.0\n", "1.0 2.0\n", flags)


# ---------------------------------------------------------------- pages generated at build
def _docs_extension():
    pytest.importorskip("sphinx", reason='pip install -e ".[docs]"')
    return docs_extension()


def test_api_pages_cover_every_public_name(tmp_path):
    ext = _docs_extension()
    ext.write_api(tmp_path)
    modules = ext.public_modules()
    for name in modules:
        page = (tmp_path / f"{name}.md").read_text()
        try:
            module = importlib.import_module(name)
        except ImportError:  # CuPy's fast step where CuPy is missing: its page is still there
            continue
        for public in getattr(module, "__all__", ()):
            assert public in page, f"{name}.{public} is not on its module's page"
    # each function and class has one page, at its shortest public path
    train = (tmp_path / "portamlp.train.md").read_text()
    assert ".. autofunction:: portamlp.train" in train
    assert not (tmp_path / "portamlp.training.train.train.md").exists()
    assert (tmp_path / "portamlp.sklearn.MLPClassifier.md").is_file()
    index = (tmp_path / "index.md").read_text()
    assert all(name in index for name in modules)


def test_options_table_is_generated_into_the_guide(tmp_path):
    from portamlp.training.config import options_table

    ext = _docs_extension()
    ext.write_options(tmp_path / "options.md")
    assert (tmp_path / "options.md").read_text() == options_table() + "\n"
    guide = (DOCS / "guide" / "training.md").read_text()
    assert "```{include} ../_generated/options.md" in guide
    assert "| `layers` |" not in guide  # no copy kept by hand


# -------------------------------------------------------------------- the fresh install
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
    command = [body.strip() for lang, body, _ in blocks(README.read_text()) if lang == "bash"][0]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not p.startswith(sys.prefix))
    env["PORTAMLP_BACKEND"] = "numpy"
    proc = subprocess.run(["bash", "-c", command], cwd=copy, capture_output=True, text=True,
                          env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "test accuracy:" in proc.stdout
    assert len(list((copy / "runs").glob("*.run.json"))) == 1
