"""``portamlp train``: its flags and config-file keys come from the option declarations
(:func:`portamlp.config.cli_options`), so the command line, ``--config`` files and
:func:`portamlp.train` always accept the same options.

Under ``mpiexec -n N portamlp train --distributed mpi`` every rank trains; only rank 0 prints,
saves the network and writes the run record, and an error is reported once (by rank 0, or by
the rank where it happened), every rank exiting with the same status."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from ..distributed import Communicator, communicator
from ..errors import TrainingInterrupted
from ..files.run_records import run_record_path, write_run_record
from ..training.config import DEFAULT_LAYERS, cli_options
from .common import EXIT_FAILED, EXIT_USAGE, CLIError, add_common

__all__ = ["add_parser", "add_option_flags", "cmd_train", "read_config", "flag_name",
           "in_flag_terms", "config_keys"]

EPILOG = """examples:
  portamlp train                                   Nielsen's 784-30-10 network, 5 epochs
  portamlp train --layers 784,256,128,10 --activation relu --cost cross_entropy \\
      --learning-rate 0.05 --momentum 0.9 --batch-size 100 --epochs 15 \\
      --learning-rate-schedule cosine --scale standardize
  portamlp train --backend cupy --epochs 30         the same code on a CUDA GPU
  portamlp train --config run.toml --epochs 3       options from a file, flags win
  portamlp train --json --quiet > run.json          machine-readable output
  portamlp train --epochs 30 --checkpoint ckpt/     Ctrl-C saves; then:
  portamlp train --resume ckpt/ --save net.json     continue where it stopped
  portamlp train --network net.json --epochs 5      train a saved network further
  mpiexec -n 2 portamlp train --distributed mpi --batch-size 256 --threads 1
                                                   data-parallel over 2 MPI ranks
"""

_TYPES = {"int": int, "float": float, "str": str, "layers": str, "scale": str, "path": Path}
_METAVARS = {"int": "N", "float": "X", "str": "NAME", "layers": "SIZES", "scale": "SCALE",
             "path": "PATH"}


def flag_name(option: str) -> str:
    """``learning_rate`` -> ``--learning-rate``."""
    return "--" + option.replace("_", "-")


def in_flag_terms(message: str, from_file: dict[str, Path] | None = None) -> str:
    """A library message in command-line terms: ``momentum=1.5`` -> ``--momentum 1.5``.

    Options in ``from_file`` (name -> config file) came from a ``--config`` file, not a flag:
    they keep their key's name and the message says which file set them.
    """
    from_file = from_file or {}
    names = sorted((d.name for d in cli_options()), key=len, reverse=True)
    pattern = r"(?<![\w.-])(" + "|".join(names) + r")=(?!=)"
    seen: dict[str, Path] = {}

    def rename(m: re.Match) -> str:
        name = m.group(1)
        if name in from_file:
            seen[name] = from_file[name]
            return m.group(0)
        return flag_name(name) + " "

    out = re.sub(pattern, rename, message)
    for name, path in seen.items():
        out += f" ({name} is set in {path})"
    return out


def config_keys(args) -> dict[str, Path]:
    """The options a ``--config`` file set and no flag overrode (name -> the file)."""
    if not getattr(args, "config", None):
        return {}
    try:
        keys = read_config(args.config)
    except Exception:
        return {}
    return {k: args.config for k in keys if getattr(args, k, None) is None}


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``train`` to the subcommands: one flag per declared option, plus the command's own."""
    p = sub.add_parser("train", help="train a network (the default command)",
                       description="Train a multilayer perceptron and save it with a run record.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_option_flags(p, cli_options())
    p.add_argument("--config", type=Path, help="TOML file of options (flags override it)")
    p.add_argument("--save", type=Path, help="where to save the network, .json or "
                                            ".safetensors (default: "
                                            "runs/<dataset>-<layers>-<time>.json)")
    p.add_argument("--force", action="store_true", help="replace an existing --save file")
    add_common(p)
    p.set_defaults(handler=cmd_train)
    return p


def add_option_flags(p, declared) -> None:
    """A flag for each of the ``declared`` options (default None: not given)."""
    for d in declared:
        text = d.help
        if d.choices:
            text += " (" + ", ".join(str(c) for c in d.choices) + ")"
        text += f"; default: {d.shown_default}"
        if d.kind == "bool":
            p.add_argument(flag_name(d.name), dest=d.name, action=argparse.BooleanOptionalAction,
                           default=None, help=text)
        else:
            kind = str(d.kind)
            p.add_argument(flag_name(d.name), dest=d.name, type=_TYPES[kind], default=None,
                           metavar=_METAVARS[kind], help=text)


def read_config(path: Path) -> dict[str, Any]:
    """Options from a TOML file (top level or a ``[train]`` table); the same keys as the flags."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise CLIError("--config needs Python 3.11+ (tomllib) or: pip install tomli") from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise CLIError(f"{path}: not valid TOML ({exc})") from None
    data = data.get("train", data)
    known = [d.name for d in cli_options()]
    unknown = sorted(set(data) - set(known))
    if unknown:
        from ..checks import suggestion

        hints = "".join(suggestion(u, known) for u in unknown)
        raise CLIError(f"{path}: unknown option(s) {unknown}{hints}; valid: {sorted(known)}")
    return data


def _default_save_path(options: dict) -> Path:
    layers = options.get("layers") or DEFAULT_LAYERS
    if isinstance(layers, str):
        layers = [s for s in layers.replace("-", ",").split(",") if s.strip()]
    name = "-".join(str(s).strip() for s in layers)
    dataset = Path(str(options.get("dataset", "mnist"))).name
    return Path("runs") / f"{dataset}-{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def _check_save(save: Path, force: bool) -> None:
    """Fail before training, in command-line terms, if the network could not be saved."""
    from ..files.writing import FORMATS, check_save_path

    if save.suffix.lower() not in FORMATS:
        raise CLIError(f"--save {save}: unknown extension {save.suffix or '(none)'}; name the "
                       "file *.json or *.safetensors")
    for p in (save, run_record_path(save)):
        if p.exists() and not force:
            raise CLIError(f"{p} already exists; pass --force to replace it or --save another "
                           "path")
    check_save_path(save, overwrite=True)


@contextmanager
def _sigterm_interrupts():
    """SIGTERM stops training like Ctrl-C (so the network trained so far is saved)."""
    def handler(signum, frame):
        raise TrainingInterrupted("terminated", signum=signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _options(args) -> dict[str, Any]:
    options = read_config(args.config) if args.config else {}
    for d in cli_options():
        value = getattr(args, d.name)
        if value is not None:
            options[d.name] = value
    for key in ("checkpoint", "resume", "root"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    return options


_T = TypeVar("_T")


def _on_every_rank(comm: Communicator, prepare: Callable[[], _T]) -> _T:
    """``prepare()`` on every rank; if it fails on any, all ranks stop with the same status
    before training (none is left waiting), and the error is raised (so printed) by rank 0 when
    it failed there, else by the ranks where it failed; the others exit quietly."""
    error: Exception | None = None
    try:
        result = prepare()
    except Exception as exc:
        if comm.size == 1:
            raise
        error = exc
    if comm.size == 1 or not comm.agree(error is not None):
        assert error is None
        return result
    root_failed = comm.share(error is not None)
    if error is not None and (comm.is_root or not root_failed):
        raise error
    raise SystemExit(EXIT_USAGE)


def cmd_train(args) -> int:
    """``portamlp train``: train from flags and ``--config``, print each epoch, save the network
    and its run record (rank 0 under MPI); returns the exit status."""
    options = _options(args)
    comm = communicator(options.get("distributed"))
    save = _on_every_rank(comm, lambda: _prepare(args, options))
    root = comm.is_root
    say = (lambda *a, **k: None) if (args.quiet or args.json or not root) else print

    def report(record, network):
        val = (f", validation accuracy {record.validation_accuracy:.2%}"
               if record.validation_accuracy is not None else "")
        say(f"epoch {record.epoch}: {record.seconds:.2f} s, train cost "
            f"{record.train_cost:.4f}{val}", flush=True)

    if options.get("progress") is None and args.quiet:
        options["progress"] = False
    import portamlp

    try:
        # Several ranks hear SIGTERM inside train(), so that they all stop at the same step.
        with _sigterm_interrupts() if comm.size == 1 else nullcontext():
            result = portamlp.train(callbacks=[report], **options)
    except TrainingInterrupted as stop:
        if not root:
            return 128 + (stop.signum or signal.SIGINT)
        return _interrupted(stop, save, args, options)
    except Exception:  # only DivergenceError reaches here from every rank: rank 0 reports it
        if root:
            raise
        raise SystemExit(EXIT_FAILED) from None
    if not root:
        return 0
    return _finish(result, save, args)


def _prepare(args, options: dict) -> Path:
    """Load what the options name (a checkpoint's configuration, a network) and check that the
    network can be saved; returns the path it will be saved to."""
    import portamlp

    naming = options
    if options.get("resume") is not None:
        from ..files.checkpoints import load_checkpoint

        naming = load_checkpoint(options["resume"]).config  # name the output after that run
    if options.get("network") is not None:
        model = Path(options["network"])
        options["network"] = portamlp.load(model, backend=options.pop("backend", None),
                                           device=options.pop("device", None))
        naming = dict(naming, layers=options["network"].layers)
    save = args.save or _default_save_path(naming)
    _check_save(save, args.force)
    return save


class SaveFailed(OSError):
    """The trained network could not be saved where asked; ``rescued`` is where it was saved
    instead (None: nowhere)."""

    def __init__(self, message: str, rescued: Path | None):
        super().__init__(message)
        self.rescued = rescued


def _save_or_rescue(net, save: Path, overwrite: bool) -> None:
    """Save ``net`` to ``save``; when that fails (a full disk, a folder that went away), save it
    to a fallback — the run folder ``runs/``, else the temporary directory — and raise
    :class:`SaveFailed` naming the path, the reason and where the network is."""
    try:
        net.save(save, overwrite=overwrite)
        return
    except OSError as exc:
        reason = str(exc)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for folder in (Path("runs"), Path(tempfile.gettempdir())):
        rescue = folder / f"rescued-{save.stem}-{stamp}-{os.getpid()}{save.suffix}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            net.save(rescue)
        except OSError:
            continue
        raise SaveFailed(f"could not save the network to {save} ({reason}); it is saved to "
                         f"{rescue} instead", rescue)
    raise SaveFailed(f"could not save the network to {save} ({reason}), nor to runs/ or the "
                     "temporary directory: the trained network is lost", None)


def _finish(result, save: Path, args) -> int:
    """Save the network and its run record; print the outcome."""
    net = result.network
    try:
        _save_or_rescue(net, save, args.force)
    except SaveFailed as failed:
        if failed.rescued is not None:
            write_run_record(run_record_path(failed.rescued), model=failed.rescued,
                             config=result.config.to_dict(), network=net,
                             history=result.history, test_accuracy=result.test_accuracy,
                             stopped_early=result.stopped_early, overwrite=False,
                             fast_step=result.fast_step)
        if result.test_accuracy is not None and not args.json:
            print(f"test accuracy: {result.test_accuracy:.2%}")
        raise
    record_path = run_record_path(save)
    record = write_run_record(record_path, model=save, config=result.config.to_dict(),
                              network=net, history=result.history,
                              test_accuracy=result.test_accuracy,
                              stopped_early=result.stopped_early, overwrite=args.force,
                              fast_step=result.fast_step)
    if args.json:
        print(json.dumps(dict(record, model=str(save), run_record=str(record_path))))
        return 0
    if result.test_accuracy is not None:
        print(f"test accuracy: {result.test_accuracy:.2%}")
    if not args.quiet:
        reason = _full_batch_reason(result)
        if reason:
            print(reason)
        print(f"saved the network to {save} and the run record to {record_path}")
    return 0


#: Why a full-batch optimizer (L-BFGS) stopped, in words (its ``scalars()["reason"]``).
_STOP_REASONS = {
    "gradient": "converged: every gradient component is at most --gtol",
    "ftol": "converged: the cost fell by at most --ftol (relative) in the last iteration",
    "max_fun": "stopped: the cost was evaluated more than --max-fun times",
    "line search": "stopped: no step satisfying the strong Wolfe conditions was found (the cost "
                   "is as low as this precision allows, or the data need scaling)",
    "": "stopped: --epochs iterations ran out before it converged; more --epochs continue it",
}


def _full_batch_reason(result) -> str | None:
    """For a full-batch optimizer's run, why it stopped; None for the others."""
    scalars = (result.optimizer_state or {}).get("scalars", {})
    if "reason" not in scalars:
        return None
    return f"{result.config.optimizer}: {_STOP_REASONS.get(scalars['reason'], scalars['reason'])}"


def _interrupted(stop: TrainingInterrupted, save: Path, args, options: dict) -> int:
    """Keep what was trained: save the network at its last complete epoch, say how to go on."""
    status = 128 + (stop.signum or signal.SIGINT)
    lines = []
    if stop.epochs_done and stop.network is not None:
        try:
            _save_or_rescue(stop.network, save, args.force)
        except SaveFailed as failed:
            print(f"portamlp: error: {failed}", file=sys.stderr)
            return status
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()
                  if k not in ("network", "callbacks")}
        write_run_record(run_record_path(save), model=save, config=config,
                         network=stop.network, history=stop.history, test_accuracy=None,
                         stopped_early=True, overwrite=args.force, interrupted=True)
        lines.append(f"interrupted after epoch {stop.epochs_done}: saved the network at that "
                     f"epoch to {save}")
    else:
        lines.append("interrupted before the first epoch completed: nothing to save")
    if stop.checkpoint is not None and stop.epochs_done is not None:
        lines.append(f"continue exactly where it stopped with: portamlp train --resume "
                     f"{stop.checkpoint} --save {save} --force")
    elif stop.epochs_done:
        epochs = options.get("epochs", 5)
        left = max(1, int(epochs) - stop.epochs_done) if isinstance(epochs, int) else 1
        lines.append(f"train it further with: portamlp train --network {save} --epochs {left} "
                     f"--save {save} --force (or use --checkpoint DIR to resume exactly)")
    for line in lines:
        print(f"portamlp: {line}", file=sys.stderr)
    return status
