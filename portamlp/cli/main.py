"""The ``portamlp`` command: a thin argparse front end over the library (no maths here).

    portamlp                      # train the default network on the embedded MNIST
    portamlp train --layers 784,100,10 --activation relu --cost cross_entropy --epochs 10
    portamlp evaluate runs/mnist-784-30-10.json
    portamlp predict runs/mnist-784-30-10.json digit.png
    portamlp plot runs/mnist-784-30-10.run.json
    portamlp info
    portamlp serve runs/mnist-784-30-10.json

Exit status: 0 on success; 1 when the run itself failed (divergence, out of memory, an
unexpected error); 2 when the command line or its inputs are wrong (a bad option or value, a
missing or malformed file, a missing extra); 130 or 143 when SIGINT or SIGTERM stopped training;
141 when the reader of the output went away (``portamlp predict ... | head -1``).
"""

from __future__ import annotations

import os
import sys
import warnings

from .. import __version__
from ..errors import PortamlpWarning
from . import plotting, serve, tools, training
from .common import EXIT_FAILED, EXIT_USAGE, CLIError, Parser

__all__ = ["build_parser", "main", "exit_status"]

EXIT_BROKEN_PIPE = 141


def build_parser() -> Parser:
    """The ``portamlp`` parser with its subcommands."""
    parser = Parser(
        prog="portamlp",
        description="Train and use multilayer perceptrons on MNIST-format data, on NumPy, CuPy "
                    "and other Array API backends. With no command, runs `portamlp train`.",
        epilog="run `portamlp COMMAND --help` for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"portamlp {__version__}")
    parser.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                        help="import a module or a .py file first (before the command): one "
                             "that registers your own activations, costs, optimizers or "
                             "backends, which then work as options, flags and in files")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    training.add_parser(sub)
    tools.add_parsers(sub)
    plotting.add_parser(sub)
    serve.add_parser(sub)
    parser.subcommands = dict(sub.choices)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    text = message.render("cli") if isinstance(message, PortamlpWarning) else str(message)
    print(f"portamlp: warning: {text}", file=sys.stderr)


_USAGE_ERRORS = (CLIError, ValueError, TypeError, FileNotFoundError, FileExistsError,
                 IsADirectoryError, NotADirectoryError, PermissionError, ImportError)


def exit_status(exc: BaseException) -> int:
    """The exit status for an error (see the module's docstring)."""
    return EXIT_USAGE if isinstance(exc, _USAGE_ERRORS) else EXIT_FAILED


def import_extensions(argv: list[str]) -> list[str]:
    """Import what each ``--import MODULE`` names (a module, found from the current folder too,
    or a ``.py`` file) and return ``argv`` without them; a CLIError names one that fails."""
    rest, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--import" or arg.startswith("--import="):
            if arg == "--import":
                if i + 1 >= len(argv):
                    raise CLIError("--import needs a module or a .py file: --import my_module")
                name, i = argv[i + 1], i + 2
            else:
                name, i = arg.split("=", 1)[1], i + 1
            _import_one(name)
            continue
        rest.append(arg)
        i += 1
    return rest


def _import_one(name: str) -> None:
    import importlib
    import importlib.util

    try:
        if name.endswith(".py") or os.sep in name:
            spec = importlib.util.spec_from_file_location(os.path.basename(name)[:-3], name)
            if spec is None or spec.loader is None or not os.path.isfile(name):
                raise ImportError(f"no such file {name}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            here = os.getcwd()
            added = here not in sys.path
            if added:
                sys.path.insert(0, here)
            try:
                importlib.import_module(name)
            finally:
                if added:
                    sys.path.remove(here)
    except Exception as exc:
        raise CLIError(f"--import {name}: {type(exc).__name__}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``portamlp`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        argv = import_extensions(argv)
    except CLIError as exc:
        print(f"portamlp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["train"] + argv
    parser.command = argv[0] if argv else None
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            # Library advice (PortamlpWarning) as one plain line on stderr; never in --json output.
            warnings.showwarning = _show_warning
            return args.handler(args)
    except BrokenPipeError:
        # The reader went away (`| head`): no message; keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("portamlp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = " ".join(line.strip() for line in str(exc).splitlines()) or type(exc).__name__
        if args.command == "train" and isinstance(exc, (ValueError, TypeError)):
            message = training.in_flag_terms(message, training.config_keys(args))
        if not isinstance(exc, _USAGE_ERRORS + (OSError,)):
            message = f"{type(exc).__name__}: {message}"
        print(f"portamlp: error: {message}", file=sys.stderr)
        return exit_status(exc)
