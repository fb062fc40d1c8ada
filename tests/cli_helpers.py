"""Running the portamlp command, and the benchmark scripts, in a subprocess, for the tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd, check=True, env=None, **kwargs):
    """``python -m portamlp ARGS`` in ``cwd``; with ``check``, fail the test on a non-zero exit
    showing what the command printed."""
    proc = subprocess.run([sys.executable, "-m", "portamlp", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_bench(script, *args):
    """``python bench/SCRIPT ARGS`` from the repository root; fails the test on a non-zero exit
    showing what the script printed, else returns its standard output."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout
