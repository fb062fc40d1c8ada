"""The ``plot`` command: a run's training curves; one training image distorted the way the
distortion options distort images in training (see :mod:`portamlp.training.distortions`); a
model's first-layer weights as images; one input through every layer of a model."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from pathlib import Path

import numpy as np

from ..datasets.registry import class_names
from ..datasets.sources import read_split
from ..files.run_records import load_run_record, run_record_path
from ..training.config import TrainConfig, cli_options
from ..training.distortions import Distortions, DistortionSpec, image_side
from .common import CLIError, add_common
from .training import add_option_flags, flag_name, in_flag_terms, read_config

__all__ = ["add_parser", "cmd_plot", "DEMO_DISTORTIONS"]

EPILOG = """examples:
  portamlp plot runs/net.run.json -o curves.png     a run's costs and accuracy per epoch
  portamlp plot distortions -o distortions.png      one digit, each distortion at a typical size
  portamlp plot distortions --config examples/mnist-distortions.toml
  portamlp plot distortions --dataset fashion-mnist --flip --rotation 10 --index 3
  portamlp plot weights runs/net.json -o weights.png   what each first-layer neuron looks for
  portamlp plot activations runs/net.json digit.png -o act.png   one input through every layer
  portamlp plot activations runs/net.json --index 7    test image 7 instead of a file
"""
#: The most first-layer units ``plot weights`` draws (the first ones, for a wider layer).
MAX_WEIGHT_IMAGES = 256

#: The sizes ``plot distortions`` shows when none are given (Simard et al.'s elastic α and σ).
DEMO_DISTORTIONS = DistortionSpec(shift=2.0, rotation=15.0, zoom=0.15, shear=15.0,
                                  elastic_alpha=34.0, elastic_sigma=4.0)
_FIELDS = [f.name for f in dataclasses.fields(DistortionSpec)]


def add_parser(sub) -> None:
    """Add ``plot`` to the subcommands."""
    p = sub.add_parser("plot", help="training curves of a run, or distorted training images, "
                       "to PNG", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", metavar="WHAT",
                   help="a run record (.run.json) or its model (.json): its training curves; "
                        "or distortions; or weights MODEL; or activations MODEL [IMAGE]")
    p.add_argument("files", nargs="*", metavar="MODEL [IMAGE]",
                   help="the model (and for activations an image file, or --index N)")
    p.add_argument("-o", "--output", type=Path,
                   help="PNG path (default: RUN with .png; distortions.png, weights.png, "
                        "activations.png)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    g = p.add_argument_group(
        "plot distortions", "one training image distorted as these options distort images in "
        "training (rows: each distortion alone, then all together); with none given, each "
        "at a typical size: " + DEMO_DISTORTIONS.describe())
    add_option_flags(g, [d for d in cli_options() if d.name in _FIELDS])
    g.add_argument("--config", type=Path, help="take the distortions (and data set) of a "
                                               "train recipe (TOML); flags override it")
    g.add_argument("--dataset", help="the data set the image comes from (default: mnist)")
    g.add_argument("--index", type=int, default=None,
                   help="which training image (default: 0); for activations: which test image")
    g.add_argument("--count", type=int, help="distorted copies per row (default: 8)")
    g.add_argument("--seed", type=int, help="the seed of the distortions (default: 0)")
    g.add_argument("--scale", help="activations: how the model's pixels were scaled (255, 256 "
                                   "or standardize), for a model that does not record it")
    add_common(p)
    p.set_defaults(handler=cmd_plot)


#: The options that belong to some kinds only, by their argparse names.
_OWN_OPTIONS = (*_FIELDS, "config", "dataset", "index", "count", "seed", "scale")


def cmd_plot(args) -> int:
    """``portamlp plot``: a run's training curves, or the picture of the kind named first
    (``distortions``, ``weights``, ``activations``), to PNG; returns the exit status."""
    kind = args.what if args.what in _KINDS else None
    handler, usage, (low, high), takes = _KINDS[kind] if kind else \
        (_plot_run, "portamlp plot RUN", (0, 0), set())
    stray = [flag_name(n) for n in _OWN_OPTIONS
             if getattr(args, n) is not None and n not in takes]
    if kind is None and not Path(args.what).exists():
        close = difflib.get_close_matches(args.what, list(_KINDS), n=1)
        if close:
            raise CLIError(f"{args.what!r} is neither a run record nor a kind of plot; did you "
                           f"mean `portamlp plot {close[0]}`?")
    if stray:
        what = f"`portamlp plot {kind}`" if kind else "the plot of a run"
        raise CLIError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to "
                       f"{what} ({usage})")
    if not low <= len(args.files) <= high:
        count = f"{low}" if low == high else f"{low} or {high}"
        noun = "file" if high == 1 else "files"
        raise CLIError(f"{usage}: {count} {noun} after {args.what!r}, got "
                       f"{len(args.files)} ({' '.join(args.files) or 'none'})")
    return handler(args)


def _plot_run(args) -> int:
    from .plots import plot_history

    path = Path(args.what)
    if not path.name.endswith(".run.json"):
        path = run_record_path(path)
    try:
        record = load_run_record(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    history = record["history"]
    output = args.output or path.with_name(path.name[: -len(".run.json")] + ".png")
    _check_output(output, args.force)
    options = record.get("options", {})
    title = "-".join(str(s) for s in options.get("layers") or []) + \
        f" {options.get('activation', '')}/{options.get('cost', '')}"
    try:
        plot_history(history, output, title=title.strip())
    except (KeyError, TypeError, ValueError) as exc:
        raise CLIError(f"{path}: its history cannot be drawn ({type(exc).__name__}: "
                       f"{str(exc)[:100]})") from None
    _report(args, output)
    return 0


def _check_output(output: Path, force: bool) -> None:
    if output.exists() and not force:
        raise CLIError(f"{output} already exists; pass --force to replace it or -o another path")


def _report(args, output: Path, **extra) -> None:
    if args.json:
        print(json.dumps({"output": str(output), **extra}))
    elif not args.quiet:
        print(f"wrote {output}")


def _spec(args) -> tuple[DistortionSpec, str]:
    """The distortions asked for (recipe, then flags), checked as ``train`` checks them, and
    the data set; :data:`DEMO_DISTORTIONS` when none is given at all. Given values that turn
    nothing on are refused (a recipe without distortions, ``--elastic-sigma`` alone)."""
    options = {}
    if args.config is not None:
        options = read_config(args.config)
    from_file = {k: v for k, v in options.items() if k in _FIELDS}
    flags = {n: getattr(args, n) for n in _FIELDS if getattr(args, n) is not None}
    chosen = {**from_file, **flags}
    dataset = args.dataset or options.get("dataset", "mnist")
    try:
        config = TrainConfig(**chosen, dataset=dataset)  # the options' own checks
    except ValueError as exc:
        raise CLIError(in_flag_terms(str(exc), {k: args.config for k in from_file
                                                if k not in flags})) from None
    if not chosen and args.config is None:
        return DEMO_DISTORTIONS, config.dataset
    if not config.distortions.active:
        given = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
        where = f"{args.config} sets" if not flags else "the options given set"
        raise CLIError(in_flag_terms(
            f"{where} no distortion{f' ({given})' if given else ''}: shift, rotation, zoom, "
            "shear and elastic_alpha are off at 0 and flip is off by default (elastic_sigma "
            "only shapes the elastic distortion); leave them all out to see each at a typical "
            "size", {k: args.config for k in from_file if k not in flags}))
    return config.distortions, config.dataset


def _plot_distortions(args) -> int:
    from .plots import plot_distortions, require_matplotlib

    require_matplotlib()
    spec, dataset = _spec(args)
    args.count = 8 if args.count is None else args.count
    args.seed = 0 if args.seed is None else args.seed
    if args.count < 1 or args.count > 32:
        raise CLIError(f"--count {args.count} is not valid; give 1 to 32 copies per row")
    images, labels = read_split(dataset, "train")
    args.index = 0 if args.index is None else args.index
    if not 0 <= args.index < images.shape[0]:
        raise CLIError(f"--index {args.index} is out of range: {dataset} has "
                       f"{images.shape[0]} training images (0 to {images.shape[0] - 1})")
    output = args.output or Path("distortions.png")
    _check_output(output, args.force)
    x = images[args.index].reshape(1, -1).astype(np.float64) / 255.0
    side = image_side(x.shape[1], spec)
    typical = spec is DEMO_DISTORTIONS
    shown = spec
    rows = []
    for single in _each_alone(shown):
        rows.append((single.describe().replace(", ", "\n"), _distort(single, x, side, args)))
    if len(rows) > 1:
        rows.append(("all together", _distort(shown, x, side, args)))
    name = class_names(dataset)[int(labels[args.index])]
    sizes = " (typical sizes: choose yours with the flags or --config)" if typical else ""
    title = f"{dataset} training image {args.index} ({name}) distorted{sizes}"
    plot_distortions(x[0], rows, output, title=title)
    _report(args, output, distortions=shown.describe(), rows=len(rows))
    return 0


def _each_alone(spec: DistortionSpec) -> list[DistortionSpec]:
    """One spec per distortion that is on (elastic with its σ)."""
    out = []
    for name in _FIELDS:
        value = getattr(spec, name)
        if name != "elastic_sigma" and value:
            extra = {"elastic_sigma": spec.elastic_sigma} if name == "elastic_alpha" else {}
            out.append(DistortionSpec(**{name: value, **extra}))
    return out


def _distort(spec: DistortionSpec, x: np.ndarray, side: int, args) -> np.ndarray:
    d = Distortions(np, None, side, spec, args.seed, np.float64, fill=0.0)
    return d.apply(np.repeat(x, args.count, axis=0), step=0)


def _model(args):
    import portamlp

    path = Path(args.files[0])
    if not path.exists():
        raise CLIError(f"{path}: no such model file")
    return path, portamlp.load(path)


def _plot_weights(args) -> int:
    from ..backends import to_numpy
    from .plots import plot_weights, require_matplotlib

    require_matplotlib()
    path, net = _model(args)
    output = args.output or Path("weights.png")
    _check_output(output, args.force)
    weights = np.asarray(to_numpy(net.weights[0]))
    units, inputs = weights.shape
    image_side(inputs)  # square images only; the error says so
    shown = weights[:MAX_WEIGHT_IMAGES]
    more = f" (the first {len(shown)} of {units})" if units > len(shown) else ""
    title = (f"{path.name}: incoming weights of the first layer's {units} units{more}; blue "
             "positive, red negative, each unit scaled to its largest")
    plot_weights(shown, output, title=title)
    _report(args, output, units=units, shown=len(shown))
    return 0


def _plot_activations(args) -> int:
    from ..backends import to_numpy
    from ..images import prepare_digit
    from .plots import plot_activations, require_matplotlib
    from .tools import preprocessing_for

    require_matplotlib()
    path, net = _model(args)
    dataset = args.dataset or "mnist"
    if len(args.files) == 2 and args.index is not None:
        raise CLIError("give an image file or --index N, not both")
    label = None
    if len(args.files) == 2:
        if args.dataset is not None:
            raise CLIError("--dataset picks the test image of --index; an image file needs "
                           "neither")
        pixels, what = prepare_digit(args.files[1]), Path(args.files[1]).name
    else:
        images, labels = read_split(dataset, "test")
        index = 0 if args.index is None else args.index
        if not 0 <= index < images.shape[0]:
            raise CLIError(f"--index {index} is out of range: the {dataset} test split has "
                           f"{images.shape[0]} images (0 to {images.shape[0] - 1})")
        pixels, label = images[index], int(labels[index])
        what = f"{dataset} test image {index} (label {class_names(dataset)[label]})"
    if pixels.size != net.layers[0]:
        raise CLIError(f"{path.name} takes {net.layers[0]} inputs; the image has {pixels.size} "
                       "pixels")
    output = args.output or Path("activations.png")
    _check_output(output, args.force)
    prep = preprocessing_for(path, net, dataset, args.scale)
    x = prep.apply(pixels.reshape(1, -1), net.dtype)
    layers = [np.asarray(to_numpy(a))[0] for a in net.activations(x)]
    names = class_names(dataset, net.layers[-1]) if net.targets == "classes" else None
    title = f"{path.name}: {what} through every layer"
    plot_activations(pixels, layers, output, names=names, title=title)
    extra = {} if label is None else {"index": index, "label": label}
    _report(args, output, layers=[len(a) for a in layers],
            prediction=int(np.argmax(layers[-1])), **extra)
    return 0


#: Each kind of plot: its handler, its usage, how many files follow it, the options it takes.
_KINDS = {
    "distortions": (_plot_distortions, "portamlp plot distortions [--config RECIPE] [flags]",
                    (0, 0), {*_FIELDS, "config", "dataset", "index", "count", "seed"}),
    "weights": (_plot_weights, "portamlp plot weights MODEL", (1, 1), set()),
    "activations": (_plot_activations,
                    "portamlp plot activations MODEL IMAGE, or MODEL --index N", (1, 2),
                    {"dataset", "index", "scale"}),
}
