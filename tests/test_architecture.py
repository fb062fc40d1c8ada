"""The package's shape: imports point one way, the core never reaches into the application
layer, and no module is named like a well-known one."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "portamlp"
#: The one lazy back-reference allowed: a model saves itself (Keras's model.save pattern).
ALLOWED_BACK_REFERENCES = {("portamlp.network", "portamlp.saving")}
#: Optional layers on top of the core, which the core must never import.
ON_TOP = ("portamlp.cli", "portamlp.sklearn", "portamlp.parallel")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """portamlp modules imported by a file, at any depth (lazy imports too), except under
    ``if TYPE_CHECKING:``."""
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
            found.update(a.name for a in node.names if a.name.startswith("portamlp"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("portamlp"):
                found.add(target)
                for a in node.names:  # "from . import datasets" names a module
                    if (PACKAGE.parent / Path(*f"{target}.{a.name}".split("."))).with_suffix(
                            ".py").exists() or (PACKAGE.parent / Path(
                            *f"{target}.{a.name}".split("."))).is_dir():
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


def _is_package_init(graph, a, b) -> bool:
    """Importing ``pkg.sub`` runs ``pkg/__init__``; an __init__ importing its own submodules is
    not an arrow back."""
    return b.startswith(a + ".") or a.startswith(b + ".") and b in graph


def test_imports_point_one_way():
    graph = _graph()
    edges = {(a, b) for a, targets in graph.items() for b in targets
             if (a, b) not in ALLOWED_BACK_REFERENCES and not _is_package_init(graph, a, b)}
    # Kahn's algorithm: every module must come out, else there is a cycle
    remaining = {m: {b for a, b in edges if a == m} for m in graph}
    order = []
    while remaining:
        ready = [m for m, deps in remaining.items() if not deps]
        if not ready:
            cycle = {m: sorted(d) for m, d in remaining.items()}
            pytest.fail(f"import cycle among: {cycle}")
        for m in ready:
            order.append(m)
            del remaining[m]
        for deps in remaining.values():
            deps.difference_update(ready)
    assert order


def test_the_core_never_imports_the_layers_on_top():
    graph = _graph()
    for a, targets in graph.items():
        if a.startswith(ON_TOP) or a == "portamlp.__main__":
            continue
        bad = [b for b in targets if b.startswith(ON_TOP)]
        assert not bad, f"{a} imports {bad}"


def test_the_maths_imports_no_array_library():
    for name in ("network", "optim", "activations", "losses", "train", "schedules"):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for m in mods:
                assert m.split(".")[0] not in ("numpy", "cupy", "torch"), f"{name} imports {m}"


#: Packages allowed a well-known name. ``portamlp.sklearn`` is the documented public path of the
#: scikit-learn estimator (``from portamlp.sklearn import MLPClassifier``, like
#: ``xgboost.sklearn``): its name says which library it adapts to rather than shadowing that
#: library's role, and absolute imports keep ``import sklearn`` inside it meaning scikit-learn.
WELL_KNOWN_NAME_EXEMPT = {PACKAGE / "sklearn"}


def test_no_module_is_named_like_a_well_known_one():
    stdlib = set(sys.stdlib_module_names)
    well_known = stdlib | {"numpy", "cupy", "torch", "safetensors", "sklearn", "dask", "mpi4py",
                           "matplotlib", "PIL", "tqdm", "pooch"}
    clashes = [p for p in PACKAGE.rglob("*.py") if p.stem in well_known and
               p.stem not in ("__init__", "__main__")]
    # packages too (a folder with an __init__.py), except the exempt ones
    clashes += [p.parent for p in PACKAGE.rglob("__init__.py") if p.parent.name in well_known
                and p.parent not in WELL_KNOWN_NAME_EXEMPT]
    assert not clashes


def test_import_portamlp_loads_datasets_and_nothing_heavy():
    code = ("import sys, portamlp; assert portamlp.datasets.load_mnist; "
            "print(sorted(m for m in ('cupy', 'torch', 'array_api_strict', 'matplotlib', "
            "'safetensors', 'sklearn', 'mpi4py', 'dask', 'portamlp.cli', 'http.server') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
