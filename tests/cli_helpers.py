"""Running the portamlp command in a subprocess, for the tests of the command line."""

import subprocess
import sys


def run(*args, cwd, check=True, env=None, **kwargs):
    """``python -m portamlp ARGS`` in ``cwd``; with ``check``, fail the test on a non-zero exit
    showing what the command printed."""
    proc = subprocess.run([sys.executable, "-m", "portamlp", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
