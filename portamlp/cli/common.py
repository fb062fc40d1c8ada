"""What the commands share: the usage-error type, the parser class, the common flags."""

from __future__ import annotations

import argparse
import re

from ..checks import suggestion

__all__ = ["CLIError", "Parser", "add_common", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_FAILED = 1
EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: a near miss of a flag gets a suggestion, and the
    full usage of the command at hand is one ``--help`` away. Flags are exact, as options are
    in Python: a prefix (``--epoch`` for ``--epochs``) is not taken for the flag."""

    #: Set by ``main`` before parsing: the command line's subcommand, for the hint.
    command: str | None = None
    #: Set by ``build_parser``: the subcommands' parsers, by name.
    subcommands: dict[str, argparse.ArgumentParser] = {}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        prog = self.prog
        sub = self._subcommand_parser()
        if sub is not None:
            prog = sub.prog
            unknown = re.findall(r"(--?[\w-]+)", message.split(":", 1)[-1]) \
                if message.startswith("unrecognized arguments") else []
            flags = re.findall(r"--[\w-]+", sub.format_help())
            message += "".join(suggestion(u, flags) for u in unknown)
        self.exit(EXIT_USAGE, f"{prog}: error: {message} (see {prog} --help)\n")

    def _subcommand_parser(self) -> argparse.ArgumentParser | None:
        return self.subcommands.get(self.command) if self.command else None


def add_common(p) -> None:
    """Flags every command has."""
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final result")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
