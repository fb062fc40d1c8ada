"""The pages whose examples the tests run (the README and every page under docs/), and their
examples as a reader meets them: Python blocks and ``portamlp`` command lines, in page order.

Blocks fenced as ``python`` run; ``bash`` blocks run their lines that start with ``portamlp``
(or run portamlp under ``mpiexec``);
``console`` and ``text`` blocks are output or sessions to read, not to run. A Python block whose
first line is ``# needs: cuda`` runs only where CuPy can compute.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Folders of docs/ the build writes (generated pages, the site): not pages of the repository.
GENERATED = ("_build", "api", "_generated")

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", flags=re.S | re.M)


def docs_extension():
    """``docs/_ext/portamlp_docs.py``, the build's page generator (which says which modules are
    public); importing it needs no Sphinx, writing pages does."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module("portamlp_docs")
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def pages() -> list[Path]:
    """README.md, then the documentation's Markdown pages."""
    found = [p for p in sorted(DOCS.rglob("*.md"))
             if not any(part in GENERATED for part in p.relative_to(DOCS).parts)]
    return [ROOT / "README.md", *found]


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass(frozen=True)
class Example:
    kind: str   # "python" or "command"
    code: str   # the block, or the command line (continuations joined)
    line: int   # where it starts on its page

    @property
    def needs(self) -> str | None:
        first = self.code.lstrip().splitlines()[0] if self.code.strip() else ""
        match = re.match(r"#\s*needs:\s*(\w+)", first)
        return match.group(1) if match else None


def blocks(text: str) -> list[tuple[str, str, int]]:
    """``(language, body, line)`` of every fenced block."""
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text)]


def examples(path: Path) -> list[Example]:
    found = []
    for lang, body, line in blocks(path.read_text()):
        if lang == "python":
            found.append(Example("python", body, line))
        elif lang == "bash":
            joined = body.replace("\\\n", " ")
            for offset, command in enumerate(joined.splitlines()):
                if command.startswith("portamlp") or (command.startswith("mpiexec ")
                                                      and "portamlp" in command):
                    found.append(Example("command", command, line + 1 + offset))
    return found
