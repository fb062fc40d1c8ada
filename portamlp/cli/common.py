"""What the commands share: the usage-error type, the parser class, the common flags."""

from __future__ import annotations

import argparse

__all__ = ["CLIError", "Parser", "add_common", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_FAILED = 1
EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the full usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_common(p) -> None:
    """Flags every command has."""
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final result")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
