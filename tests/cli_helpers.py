"""Running the portamlp command for the tests: in this process through ``main(argv)`` (the
default: quick), or as ``python -m portamlp`` in a subprocess where the process itself is under
test (its exit on a signal, a closed pipe, a traceback at exit); and the benchmark scripts."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _inside(cwd, env):
    """The current directory and environment a command runs in, restored afterwards."""
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    os.chdir(cwd)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


def run(*args, cwd, check=True, env=None, process=False, **kwargs):
    """``portamlp ARGS`` in ``cwd``: returns ``.returncode``, ``.stdout``, ``.stderr``.

    In this process by default (``portamlp.cli.main``, its output captured); with
    ``process=True`` (or subprocess options such as ``timeout=``), as ``python -m portamlp``.
    With ``check``, fail the test on a non-zero exit showing what the command printed.
    """
    argv = [str(a) for a in args]
    if process or kwargs:
        proc = subprocess.run([sys.executable, "-m", "portamlp", *argv], cwd=cwd,
                              capture_output=True, text=True, env=env, **kwargs)
    else:
        from portamlp.cli import main

        out, err = io.StringIO(), io.StringIO()
        with _inside(cwd, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse: --help, --version, usage errors
                status = exc.code if isinstance(exc.code, int) else 1
        proc = SimpleNamespace(returncode=status, stdout=out.getvalue(), stderr=err.getvalue(),
                               args=["portamlp", *argv])
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
