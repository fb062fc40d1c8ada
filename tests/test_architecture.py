"""The package's shape: the layers of pyproject.toml's import contract hold, imports have no
cycles, only ``backends/`` knows the array libraries, and no module is named like a well-known
one."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "portamlp"
CONTRACT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
#: The lazy back-references the contract allows ("a -> b"), declared once, in pyproject.toml.
ALLOWED_BACK_REFERENCES = {tuple(s.split(" -> ")) for c in CONTRACT["contracts"]
                           for s in c.get("ignore_imports", [])}
#: Array libraries only portamlp/backends/ may name (NumPy is the host's library: everyone's).
LIBRARIES = ("cupy", "torch", "array_api_strict", "jax")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules imported by a file, at any depth (lazy imports too), except under
    ``if TYPE_CHECKING:``; relative imports resolved."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            for a in node.names:  # "from . import datasets" names a module
                sub = PACKAGE.parent / Path(*f"{target}.{a.name}".split("."))
                if sub.with_suffix(".py").exists() or sub.is_dir():
                    found.add(f"{target}.{a.name}")
    return {m for m in found if m != name}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for m in _imports(path):
            while m not in modules and "." in m:
                m = m.rsplit(".", 1)[0]
            if m in modules and m != name:
                targets.add(m)
        graph[name] = targets
    return graph


def test_the_layers_hold():
    """import-linter checks the layers contract of pyproject.toml (every import, lazy ones
    included): a module imports from its own layer and the layers below, never above."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_the_contract_names_every_package_and_module_of_the_top_level():
    """A new package or top-level module must be placed in a layer (or the check misses it)."""
    layers = {name.strip() for c in CONTRACT["contracts"] for layer in c["layers"]
              for name in layer.split("|")}
    top = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in
                                                     PACKAGE.glob("*/__init__.py")}
    top -= {"__init__", "__main__"}
    assert {f"portamlp.{t}" for t in top} == layers


def test_imports_have_no_cycles():
    graph = _graph()

    def inside(a, b):  # a package's __init__ importing its own submodules is not a cycle
        return b.startswith(a + ".") or a.startswith(b + ".") and b in graph

    edges = {(a, b) for a, targets in graph.items() for b in targets
             if (a, b) not in ALLOWED_BACK_REFERENCES and not inside(a, b)}
    remaining = {m: {b for a, b in edges if a == m} for m in graph}
    while remaining:  # Kahn's algorithm: every module must come out, else there is a cycle
        ready = [m for m, deps in remaining.items() if not deps]
        if not ready:
            pytest.fail(f"import cycle among: { {m: sorted(d) for m, d in remaining.items()} }")
        for m in ready:
            del remaining[m]
        for deps in remaining.values():
            deps.difference_update(ready)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants, docstrings excluded."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                    ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr)
                  and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and
            id(n) not in docstrings]


def test_only_the_backends_name_the_array_libraries():
    """No import of CuPy, PyTorch, array-api-strict or JAX, and no test of a backend's name,
    outside portamlp/backends/ (and portamlp/fast/, whose steps are backend-specific by
    design): the other packages ask the backend entries."""
    offences = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("backends", "fast"):
            continue
        for m in _imports(path):
            if m.split(".")[0] in LIBRARIES:
                offences.append(f"{rel} imports {m}")
        for line, value in _strings(ast.parse(path.read_text())):
            if value in LIBRARIES:
                offences.append(f"{rel}:{line} names {value!r}")
    assert not offences


def test_the_maths_imports_no_array_library():
    for rel in ("nn/network.py", "nn/activations.py", "nn/costs.py", "training/optimizers.py",
                "training/train.py", "training/resolve.py", "training/schedules.py",
                "training/stopping.py", "training/hooks.py", "training/dropout.py"):
        for m in _imports(PACKAGE / rel):
            assert m.split(".")[0] not in ("numpy", *LIBRARIES), f"{rel} imports {m}"


#: Modules allowed a well-known name: a backend entry is named after the library it describes
#: (as array-api-compat's ``array_api_compat.numpy`` and Keras's ``backend/numpy/``), and
#: ``portamlp.sklearn`` is the documented public path of the estimators (``from
#: portamlp.sklearn import MLPClassifier``, like ``xgboost.sklearn``); absolute imports keep
#: ``import numpy`` inside them meaning NumPy.
WELL_KNOWN_NAME_EXEMPT = {PACKAGE / "sklearn", *PACKAGE.joinpath("backends").glob("*.py")}


def test_no_module_is_named_like_a_well_known_one():
    stdlib = set(sys.stdlib_module_names)
    well_known = stdlib | {"numpy", "cupy", "torch", "safetensors", "sklearn", "dask", "mpi4py",
                           "matplotlib", "PIL", "tqdm", "pooch", "jax", "array_api_strict"}
    clashes = [p for p in PACKAGE.rglob("*.py") if p.stem in well_known and
               p.stem not in ("__init__", "__main__") and p not in WELL_KNOWN_NAME_EXEMPT]
    # packages too (a folder with an __init__.py), except the exempt ones
    clashes += [p.parent for p in PACKAGE.rglob("__init__.py") if p.parent.name in well_known
                and p.parent not in WELL_KNOWN_NAME_EXEMPT]
    assert not clashes


def test_import_portamlp_loads_datasets_and_nothing_heavy():
    code = ("import sys, portamlp; assert portamlp.datasets.load_mnist; "
            "print(sorted(m for m in ('cupy', 'torch', 'array_api_strict', 'jax', 'matplotlib', "
            "'safetensors', 'sklearn', 'mpi4py', 'dask', 'portamlp.cli', 'http.server') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
