"""Sphinx configuration of portamlp's documentation.

Build: ``pip install -e ".[docs]" && python -m sphinx -W -b html docs docs/_build/html``.
The API reference and the options table are generated from the package when the build starts
(``_ext/portamlp_docs.py``); the code examples of these pages run in the test suite
(``tests/test_docs.py``).
"""

import sys
import zlib
from pathlib import Path

import portamlp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

from portamlp_docs import MOCKED  # noqa: E402  (found through the path above)

project = "portamlp"
author = "the portamlp developers"
copyright = "the portamlp developers, MIT licence"
release = portamlp.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "portamlp_docs",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "**/.ipynb_checkpoints"]
templates_path = []

# MyST: the README's Markdown as it is, with heading anchors for links between pages.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4

# The API pages: numpydoc reads the docstrings; autosummary makes the tables of each module's
# names (the pages themselves are written by portamlp_docs, not by autosummary).
autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types in words
autodoc_mock_imports = MOCKED
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "furo"
html_title = f"portamlp {release}"
html_static_path = []
pygments_style = "default"

# Links into the documentation of NumPy, the Array API standard, scikit-learn and CuPy. Each
# site's own inventory is read when the build can reach it; where it cannot (a machine without
# network), a small inventory of the names these pages cite, written below, stands in so that
# the links still resolve and the build still passes with -W.
_SITES = {
    "numpy": ("https://numpy.org/doc/stable/", "NumPy", {
        "py:class": {"numpy.ndarray": "reference/generated/numpy.ndarray.html#$",
                     "numpy.random.Generator": "reference/random/generator.html#$"},
        "py:function": {"numpy.random.default_rng": "reference/random/generator.html#$",
                        "numpy.asarray": "reference/generated/numpy.asarray.html#$"},
    }),
    "array-api": ("https://data-apis.org/array-api/latest/", "Python array API standard", {
        "py:function": {f"array_api.{f}": f"API_specification/generated/array_api.{f}.html#$"
                        for f in ("take", "matmul", "exp", "sum", "argmax", "asarray")},
    }),
    "sklearn": ("https://scikit-learn.org/stable/", "scikit-learn", {
        "py:class": {f"sklearn.{m}": f"modules/generated/sklearn.{m}.html#$" for m in (
            "neural_network.MLPClassifier", "neural_network.MLPRegressor",
            "model_selection.GridSearchCV", "pipeline.Pipeline",
            "preprocessing.StandardScaler")},
        "py:function": {"sklearn.set_config": "modules/generated/sklearn.set_config.html#$",
                        "sklearn.utils.estimator_checks.parametrize_with_checks":
                        "modules/generated/"
                        "sklearn.utils.estimator_checks.parametrize_with_checks.html#$"},
    }),
    "cupy": ("https://docs.cupy.dev/en/stable/", "CuPy", {
        "py:class": {"cupy.ndarray": "reference/generated/cupy.ndarray.html#$",
                     "cupy.cuda.Device": "reference/generated/cupy.cuda.Device.html#$"},
        "py:function": {"cupyx.allow_synchronize":
                        "reference/generated/cupyx.allow_synchronize.html#$"},
    }),
}


def _offline_inventory(name: str, title: str, entries: dict) -> str:
    """Write a Sphinx inventory (version 2) of ``entries``; return its path."""
    lines = [f"{obj} {role} 1 {uri} -" for role, objs in entries.items()
             for obj, uri in sorted(objs.items())]
    header = (f"# Sphinx inventory version 2\n# Project: {title}\n# Version: \n"
              "# The remainder of this file is compressed using zlib.\n").encode()
    path = HERE / "_build" / "offline-inventories" / f"{name}.inv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + zlib.compress(("\n".join(lines) + "\n").encode()))
    return str(path)


intersphinx_mapping = {name: (url, (None, _offline_inventory(name, title, entries)))
                       for name, (url, title, entries) in _SITES.items()}
intersphinx_timeout = 5
