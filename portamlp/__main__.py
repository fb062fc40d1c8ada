"""``python -m portamlp``: the same as the ``portamlp`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
