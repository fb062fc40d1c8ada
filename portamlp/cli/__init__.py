"""The ``portamlp`` command, the application on top of the library.

The command line (:mod:`.main`: the parser and ``main``; :mod:`.training`: ``portamlp train``;
:mod:`.tools`: ``evaluate``, ``predict``, ``info``, ``plot``), pictures (:mod:`.plots`),
preparing photos of digits (:mod:`.images`) and run records (:mod:`.records`). The library core
never imports this package.
"""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
