"""The ``portamlp`` command: a thin argparse front end over the library (no maths here).

    portamlp                      # train the default network on the embedded MNIST
    portamlp train --layers 784,100,10 --activation relu --cost cross_entropy --epochs 10
    portamlp evaluate runs/mnist-784-30-10.json
    portamlp predict runs/mnist-784-30-10.json digit.png
    portamlp plot runs/mnist-784-30-10.run.json
    portamlp info
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from . import __version__

EPILOG_TRAIN = """examples:
  portamlp train                                   Nielsen's 784-30-10 network, 5 epochs
  portamlp train --layers 784,256,128,10 --activation relu --cost cross_entropy \\
      --learning-rate 0.05 --momentum 0.9 --batch-size 100 --epochs 15 \\
      --learning-rate-schedule cosine --scale standardize
  portamlp train --backend cupy --epochs 30         the same code on a CUDA GPU
  portamlp train --config run.toml --epochs 3       options from a file, flags win
  portamlp train --json --quiet > run.json          machine-readable output
  portamlp train --epochs 30 --checkpoint ckpt/     Ctrl-C saves; then:
  portamlp train --resume ckpt/ --save net.json     continue where it stopped
"""


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the full usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _layers(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers such as 784,30,10") from None
    return sizes


def _scale(text: str):
    return text if text.startswith("standard") else float(text)


# Every train() option as a flag: (flag, dest, type, help). Defaults are train()'s own.
TRAIN_FLAGS = [
    ("--layers", "layers", _layers, "layer sizes, inputs first (default 784,30,10)"),
    ("--epochs", "epochs", int, "passes over the training data (default 5)"),
    ("--batch-size", "batch_size", int, "mini-batch size (default 10)"),
    ("--learning-rate", "learning_rate", float, "step size η (default 3.0)"),
    ("--learning-rate-schedule", "learning_rate_schedule", str, "constant (default) or cosine"),
    ("--activation", "activation", str, "sigmoid (default), relu, leaky_relu or tanh"),
    ("--cost", "cost", str, "quadratic (default) or cross_entropy (softmax output)"),
    ("--optimizer", "optimizer", str, "sgd (default) or adam"),
    ("--momentum", "momentum", float, "SGD momentum in [0, 1) (default 0)"),
    ("--weight-decay", "weight_decay", float, "L2 penalty λ on the weights (default 0)"),
    ("--init", "init", str, "auto (default), normal, scaled, glorot or he"),
    ("--dtype", "dtype", str, "float32 (default) or float64"),
    ("--train-length", "train_length", int, "training images used (default 50000)"),
    ("--validation-length", "validation_length", int,
     "validation images, from the end of the training file (default 10000)"),
    ("--test-length", "test_length", int, "test images used (default 10000)"),
    ("--dataset", "dataset", str, "mnist (default, embedded), fashion-mnist, kmnist or a folder"),
    ("--scale", "scale", _scale, "pixel scaling: 255 (default), 256 or standardize"),
    ("--seed", "seed", int, "random seed (default: fresh, recorded in the run record)"),
    ("--threads", "threads", int, "BLAS threads on the CPU (default: 1 for small products, "
                                  "else the idle cores)"),
]


def _add_train_parser(sub):
    p = sub.add_parser("train", help="train a network (the default command)",
                       description="Train a multilayer perceptron and save it with a run record.",
                       epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, dest, typ, text in TRAIN_FLAGS:
        p.add_argument(flag, dest=dest, type=typ, default=None, help=text)
    p.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", default=None,
                   help="keep the training order fixed")
    p.add_argument("--download", action="store_true", default=None,
                   help="download --dataset (fashion-mnist, kmnist) if it is not found locally")
    p.add_argument("--backend", help="numpy, cupy, torch, array_api_strict or auto (default: "
                                     "$PORTAMLP_BACKEND, else auto)")
    p.add_argument("--device", help="device of the backend, e.g. cuda:1")
    p.add_argument("--config", type=Path, help="TOML file of options (flags override it)")
    p.add_argument("--save", type=Path, help="where to save the network (default: "
                                            "runs/<dataset>-<layers>-<time>.json)")
    p.add_argument("--force", action="store_true", help="replace an existing --save file")
    p.add_argument("--checkpoint", type=Path, metavar="DIR",
                   help="write a checkpoint to DIR after every epoch; Ctrl-C / SIGTERM then "
                        "save one and stop cleanly")
    p.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the run checkpointed in DIR (its settings; --epochs may "
                        "extend it)")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show the progress bar even when stderr is not a terminal")
    _add_common(p)
    p.set_defaults(handler=cmd_train)
    return p


def _add_common(p):
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final result")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="portamlp",
        description="Train and use multilayer perceptrons on MNIST-format data, on NumPy, CuPy "
                    "and other Array API backends. With no command, runs `portamlp train`.",
        epilog="run `portamlp COMMAND --help` for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"portamlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train_parser(sub)
    from . import cli_tools

    cli_tools.add_parsers(sub, _add_common)
    return parser


def _read_config(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
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
    known = {dest for _, dest, _, _ in TRAIN_FLAGS} | {"nesterov", "shuffle", "backend", "device"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CLIError(f"{path}: unknown option(s) {unknown}; valid: {sorted(known)}")
    if isinstance(data.get("layers"), str):
        data["layers"] = _layers(data["layers"])
    return data


def _default_save_path(options: dict) -> Path:
    layers = "-".join(str(s) for s in options.get("layers") or (784, 30, 10))
    dataset = Path(str(options.get("dataset", "mnist"))).name
    return Path("runs") / f"{dataset}-{layers}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def run_record_path(model_path: Path) -> Path:
    """Where the run record of a saved model goes: ``net.json`` → ``net.run.json``."""
    return model_path.with_suffix(".run.json")


def cmd_train(args) -> int:
    import portamlp

    from .io import atomic_write_bytes
    from .provenance import environment

    options = _read_config(args.config) if args.config else {}
    for _, dest, _, _ in TRAIN_FLAGS:
        if getattr(args, dest) is not None:
            options[dest] = getattr(args, dest)
    for dest in ("nesterov", "shuffle", "backend", "device", "download"):
        if getattr(args, dest) is not None:
            options[dest] = getattr(args, dest)
    save = args.save or _default_save_path(options)
    record_path = run_record_path(save)
    if not args.force:
        for p in (save, record_path):
            if p.exists():
                raise CLIError(f"{p} already exists; pass --force to replace it or --save "
                               "another path")
    say = (lambda *a, **k: None) if (args.quiet or args.json) else print

    def report(record, network):
        val = (f", validation accuracy {record.validation_accuracy:.2%}"
               if record.validation_accuracy is not None else "")
        say(f"epoch {record.epoch}: {record.seconds:.2f} s, train loss "
            f"{record.train_loss:.4f}{val}", flush=True)

    progress = args.progress if args.progress else (None if not args.quiet else False)
    try:
        result = portamlp.train(progress=progress, callbacks=[report], checkpoint=args.checkpoint,
                                resume=args.resume, **options)
    except portamlp.TrainingInterrupted as stop:
        print(f"portamlp: {stop}", file=sys.stderr)
        return 128 + (stop.signum or 2)
    net = result.network
    save.parent.mkdir(parents=True, exist_ok=True)
    net.save(save, overwrite=args.force)
    record = {
        "model": str(save.name),
        "options": result.config.to_dict(),
        "backend": net.backend.name,
        "device": str(net.backend.device),
        "environment": environment(),
        "history": [vars(r) for r in result.history],
        "test_accuracy": result.test_accuracy,
        "stopped_early": result.stopped_early,
    }
    atomic_write_bytes(record_path, json.dumps(record, indent=1).encode(), overwrite=args.force)
    if args.json:
        print(json.dumps(dict(record, model=str(save), run_record=str(record_path))))
        return 0
    if result.test_accuracy is not None:
        print(f"test accuracy: {result.test_accuracy:.2%}")
    if not args.quiet:
        print(f"saved the network to {save} and the run record to {record_path}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"portamlp: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``portamlp`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["train"] + argv
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["train"])
    try:
        with warnings.catch_warnings():
            # Library advice (PortamlpWarning) as one plain line on stderr; never in --json output.
            warnings.showwarning = _show_warning
            return args.handler(args) if hasattr(args, "handler") else cmd_train(args)
    except KeyboardInterrupt:
        print("portamlp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = " ".join(line.strip() for line in str(exc).splitlines()) or type(exc).__name__
        if not isinstance(exc, (CLIError, ValueError, TypeError, FileNotFoundError,
                                FileExistsError, OSError, ImportError)):
            message = f"{type(exc).__name__}: {message}"
        print(f"portamlp: error: {message}", file=sys.stderr)
        return 2 if isinstance(exc, (CLIError, ValueError, TypeError)) else 1
