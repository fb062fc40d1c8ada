"""Pages of portamlp's documentation generated from the package itself, when the build starts.

- The API reference (``api/``): a page per public module listing its ``__all__``, and a page
  per class or function at its shortest public path (``portamlp.train``, not
  ``portamlp.training.train.train``). A module that re-exports a name links to that page, so
  every object is described once and every cross-reference has one target. Nothing here lists
  names: a new entry of an ``__all__`` gets its page at the next build.
- The table of ``train``'s options (``_generated/options.md``), from the declarations
  (:func:`portamlp.training.config.options_table`); the guide includes it.

Both are written under the source folder and ignored by git (``docs/.gitignore``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Sphinx is imported where pages are written: the tests read
    from sphinx.application import Sphinx  # public_modules() without it

#: Libraries a public module may import at its top that the ``docs`` extra does not install
#: (they need a GPU or an MPI library): where missing, autodoc's stand-ins take their place
#: while the module is read. conf.py gives autodoc the same list.
MOCKED = ["cupy", "cupyx", "mpi4py"]


@dataclass
class Entry:
    module: str   # the module whose __all__ lists it
    name: str
    obj: object
    kind: str     # "module", "class", "exception", "function" or "data"

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}"


def public_modules(package: str = "portamlp") -> list[str]:
    """The package and its modules without an underscore in their path, ``__main__`` excepted."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


def _kind(obj: object) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "data"


def collect(modules: list[str]) -> dict[str, list[Entry]]:
    """Each public module's ``__all__``, in its own order."""
    found = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:  # it needs a library this build lacks (CuPy): read it with stand-ins
            from sphinx.ext.autodoc.mock import mock

            with mock(MOCKED):
                module = importlib.import_module(name)
            sys.modules.pop(name, None)  # and keep no module built on stand-ins afterwards
        found[name] = [Entry(name, n, getattr(module, n), _kind(getattr(module, n)))
                       for n in getattr(module, "__all__", ())]
    return found


def canonical_paths(entries: dict[str, list[Entry]]) -> dict[int, str]:
    """Each class and function's page: the shortest public path that names it."""
    best: dict[int, tuple] = {}
    for listed in entries.values():
        for e in listed:
            if e.kind in ("class", "exception", "function"):
                key = (e.module.count("."), e.module, e.name)
                if id(e.obj) not in best or key < best[id(e.obj)]:
                    best[id(e.obj)] = key
    return {k: f"{module}.{name}" for k, (_, module, name) in best.items()}


def _data_comment(entry: Entry, analyzers: dict[str, dict]) -> str:
    """The ``#:`` comment above a constant: in its module, else where it is defined."""
    own = analyzers.get(entry.module, {}).get(("", entry.name))
    if own:
        return "\n".join(own).strip()
    for module, docs in analyzers.items():
        comment = docs.get(("", entry.name))
        if comment and getattr(importlib.import_module(module), entry.name, None) is entry.obj:
            return "\n".join(comment).strip()
    return ""


def _rst(directive: str, argument: str, *options: str, body: str = "") -> str:
    """An RST directive in an ``eval-rst`` block: autodoc writes reStructuredText, which the
    MyST page must not read as Markdown."""
    lines = ["```{eval-rst}", f".. {directive}:: {argument}".rstrip(),
             *(f"   {o}" for o in options)]
    if body:
        lines += ["", *(f"   {line}" if line else "" for line in body.splitlines())]
    return "\n".join(lines + ["```", ""])


def write_api(outdir: Path) -> None:
    from sphinx.pycode import ModuleAnalyzer

    modules = public_modules()
    entries = collect(modules)
    pages = canonical_paths(entries)
    analyzers = {}
    for name in modules:
        try:
            analyzers[name] = ModuleAnalyzer.for_module(name).find_attr_docs()
        except Exception:  # a module without readable source: no comments to show
            analyzers[name] = {}
    files: dict[str, str] = {}
    outer = [m for m in modules if m.count(".") <= 1]
    inner = [m for m in modules if m.count(".") > 1]
    index = ["# API reference", "",
             "Every public module of portamlp and every name in its `__all__`, generated from "
             "the package when the documentation is built. Most programs need only the names "
             "of the top-level package, {mod}`portamlp`, and of its subpackages below. The "
             "modules inside the subpackages are listed second: the extension points "
             "(activations, costs, initialisations, optimizers, backends, data sets) are in the "
             "modules their registries live in (see {doc}`../architecture`); the rest are for "
             "contributors.", "",
             "## The package and its subpackages", "",
             "```{toctree}", ":maxdepth: 1", "", *outer, "```", "",
             "## The modules inside them", "",
             "```{toctree}", ":maxdepth: 1", "", *inner, "```", ""]
    files["index"] = "\n".join(index)
    for module in modules:
        text = [f"# {module}", "", _rst("automodule", module, ":no-members:")]
        own, table, data = [], [], []
        for e in entries[module]:
            if e.kind == "module":
                full = e.obj.__name__
                table.append(e.name if full == e.path else full)
            elif e.kind == "data":
                data.append(e)
            else:
                target = pages[id(e.obj)]
                table.append(e.name if target == e.path else target)
                if target == e.path:
                    own.append(e)
        if table:
            text += ["```{eval-rst}", ".. autosummary::", "   :nosignatures:", "",
                     *(f"   {t}" for t in table), "```", ""]
        if own:
            text += ["```{toctree}", ":hidden:", "", *(e.path for e in own), "```", ""]
        for e in data:
            value = repr(e.obj)
            options = [f":value: {value}"] if len(value) <= 60 and "\n" not in value else []
            comment = _data_comment(e, analyzers)
            text.append(_rst("py:data", e.path, *options, body=comment))
        files[module] = "\n".join(text)
        for e in own:
            directive = {"class": "autoclass", "exception": "autoexception",
                         "function": "autofunction"}[e.kind]
            options = [":members:", ":show-inheritance:"] if e.kind != "function" else []
            files[e.path] = "\n".join([f"# {e.path}", "", _rst(directive, e.path, *options)])
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob("*.md"):
        if stale.stem not in files:
            stale.unlink()
    for name, text in files.items():
        _write_if_changed(outdir / f"{name}.md", text)


def write_options(path: Path) -> None:
    from portamlp.training.config import options_table

    path.parent.mkdir(parents=True, exist_ok=True)
    _write_if_changed(path, options_table() + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    """Unchanged pages keep their time stamp, so a second build rereads nothing."""
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _generate(app: Sphinx) -> None:
    source = Path(app.srcdir)
    write_api(source / "api")
    write_options(source / "_generated" / "options.md")


def _skip_borrowed(app, what, name, obj, skip, options):
    """Members another library puts on portamlp's classes (scikit-learn's metadata-routing
    setters, ``set_fit_request``) belong to that library's documentation."""
    if (getattr(obj, "__module__", None) or "").split(".")[0] == "sklearn":
        return True
    return None


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _generate, priority=100)
    app.connect("autodoc-skip-member", _skip_borrowed)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
