"""The ``evaluate``, ``predict`` and ``info`` commands (see :mod:`portamlp.cli.main`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..datasets.registry import class_names
from ..errors import warn
from ..files.run_records import read_run_record
from .common import CLIError, add_common

__all__ = ["add_parsers", "cmd_evaluate", "cmd_predict", "cmd_info", "preprocessing_for"]

EPILOG_EVALUATE = """examples:
  portamlp evaluate runs/net.json
  portamlp evaluate runs/net.json --dataset fashion-mnist --plot figures/
  portamlp evaluate ckpt/                           the network of a training checkpoint
"""
EPILOG_PREDICT = """examples:
  portamlp predict runs/net.json my-digit.png another.jpg
  portamlp predict runs/net.json --index 0          test image 0 instead of a file

An image with no visible ink is reported as "no digit found" (exit status 1); the others are
still classified.
"""


def add_parsers(sub) -> None:
    """Add ``evaluate``, ``predict`` and ``info`` to the subcommands."""
    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix",
                       epilog=EPILOG_EVALUATE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a saved network (.json, .safetensors, or a "
                                            "checkpoint directory)")
    _data_flags(p)
    p.add_argument("--length", type=int, help="use only the first N test images")
    p.add_argument("--plot", type=Path, metavar="DIR",
                   help="write confusion.png and misclassified.png into DIR")
    add_common(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("predict", help="classify image files (or test images)",
                       epilog=EPILOG_PREDICT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a saved network (.json, .safetensors, or a "
                                            "checkpoint directory)")
    p.add_argument("images", nargs="*", type=Path, help="PNG/JPEG files of single digits")
    p.add_argument("--index", type=int, action="append", help="test image N (repeatable)")
    _data_flags(p)
    add_common(p)
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("export", help="write a saved network as an ONNX model",
                       epilog=EPILOG_EXPORT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a saved network (.json, .safetensors, or a "
                                            "checkpoint directory)")
    p.add_argument("output", type=Path, help="the .onnx file to write")
    p.add_argument("--inputs", choices=["features", "pixels", "images"], default="features",
                   help="what the graph takes: the network's features (default), raw pixels "
                        "0-255 as rows (N, 784), or images (N, 28, 28); pixels are prepared "
                        "inside the graph as the model records")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip running the export on the test images with ONNX Runtime")
    p.add_argument("--dataset", help="the test images to check on (default: the one the model "
                                     "was trained on, else mnist)")
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--device", help=argparse.SUPPRESS)
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    add_common(p)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("info", help="versions, and the backends usable here")
    add_common(p)
    p.set_defaults(handler=cmd_info)


def _data_flags(p):
    p.add_argument("--dataset", help="data set (default: the one the model was trained on, "
                                     "else mnist)")
    p.add_argument("--scale", help="pixel scaling: 255, 256 or standardize (default: the "
                                   "model's own, recorded when it was trained)")
    p.add_argument("--backend", help="backend to run on (default: auto)")
    p.add_argument("--device", help="device of the backend, e.g. cuda:1")


def _load_model(args):
    import portamlp

    return portamlp.load(args.model, backend=args.backend, device=args.device)


def preprocessing_for(model: Path, net, dataset: str, scale=None):
    """How to prepare pixels for a loaded model: ``scale`` if given; else the model's own; else
    its run record's; else ÷255, with a warning (files from before preprocessing was stored)."""
    from ..datasets import Preprocessing

    if scale is not None:
        return Preprocessing.from_scale(scale, dataset)
    if net.preprocessing is not None:
        return net.preprocessing
    recorded = read_run_record(model).get("options", {}).get("scale")
    if recorded is not None:
        return Preprocessing.from_scale(recorded, dataset)
    warn(f"{model} does not record how its training pixels were scaled (it predates "
         "portamlp 0.2, or was trained on your own arrays); assuming ÷255, pass --scale to "
         "choose")
    return Preprocessing.from_scale(255, dataset)


def _dataset(args) -> str:
    return args.dataset or read_run_record(args.model).get("options", {}).get("dataset") \
        or "mnist"


EPILOG_EXPORT = """examples:
  portamlp export runs/net.json net.onnx                 # features in, checked on MNIST's test set
  portamlp export runs/net.json net.onnx --inputs images --force

needs: pip install "portamlp[onnx]"   (ndonnx, onnx, onnxruntime)"""


def cmd_export(args) -> int:
    """``portamlp export``: write the ONNX model; with the check (the default), run it on the
    test images of the model's data set with ONNX Runtime and compare with Network.predict."""
    from ..export import export_onnx

    if args.output.suffix.lower() != ".onnx":
        raise CLIError(f"{args.output}: an ONNX export is a .onnx file")
    if args.output.exists() and not args.force:
        raise CLIError(f"{args.output} already exists; pass --force to replace it or choose "
                       "another path")
    net = _load_model(args)
    if args.inputs != "features" and net.preprocessing is None:
        raise CLIError(f"--inputs {args.inputs} puts the network's pixel preprocessing in the "
                       "graph, but this network does not record one (it was not trained on a "
                       "named image data set): use --inputs features")
    check, on = (_export_check_inputs(args, net) if args.check else (None, ""))
    path = export_onnx(net, args.output, inputs=args.inputs, overwrite=args.force, check=check)
    agree = "the labels equal portamlp's" if net.targets != "values" else \
        "the values agree with portamlp's"
    what = f"checked on {on} with ONNX Runtime: {agree}" if check is not None else \
        "not checked (--no-check)"
    if args.json:
        print(json.dumps({"path": str(path), "bytes": path.stat().st_size,
                          "inputs": args.inputs, "checked_rows": None if check is None
                          else len(check), "checked_on": on or None}))
    else:
        print(f"wrote {path} ({path.stat().st_size:,} bytes; inputs: {args.inputs}); {what}")
    return 0


def _export_check_inputs(args, net):
    """What to check the export on, as its graph takes it, and those rows in words: the test
    images of the model's data set, or random rows for a network that was not trained on
    28×28 images (its own features)."""
    from ..datasets import load

    if net.layers[0] != 28 * 28 or net.preprocessing is None:
        rows = np.random.default_rng(0).standard_normal((256, net.layers[0]))
        return rows.astype(net.dtype), "256 random rows (the network takes its own features)"
    dataset = _dataset(args)
    x, _ = load(dataset, "test", backend="numpy", dtype="float64", scale=255)
    pixels = np.rint(np.asarray(x) * 255.0)  # the raw 0-255 pixels
    on = f"the {len(pixels):,} {dataset} test images"
    if args.inputs == "images":
        return pixels.reshape(-1, 28, 28).astype(net.dtype), on
    if args.inputs == "pixels":
        return pixels.astype(net.dtype), on
    return net.preprocessing.apply(pixels, net.dtype), on


def cmd_evaluate(args) -> int:
    """``portamlp evaluate``: a saved network's accuracy on a data set's split, its pixels
    prepared as the model records; ``--plot`` adds the confusion matrix and the misclassified
    images."""
    from ..backends import to_numpy
    from ..datasets import load

    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()  # before any work, and before making the folder
    net = _load_model(args)
    dataset = _dataset(args)
    prep = preprocessing_for(args.model, net, dataset, args.scale)
    x, y = load(dataset, "test", backend=net.backend, dtype=net.dtype, preprocessing=prep,
                length=args.length)
    predicted, truth = to_numpy(net.predict(x)), to_numpy(y)
    k = net.layers[-1]
    names = class_names(dataset, k)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    accuracy = float(np.mean(predicted == truth))
    per_class = [float(matrix[c, c] / matrix[c].sum()) if matrix[c].sum() else None
                 for c in range(k)]
    plots = []
    if args.plot:
        from .plots import plot_confusion, plot_misclassified

        args.plot.mkdir(parents=True, exist_ok=True)
        plots.append(str(plot_confusion(matrix, args.plot / "confusion.png",
                                        f"{args.model.name} on {dataset} test", names)))
        images = to_numpy(x).reshape(len(truth), -1)
        images = (images - images.min()) / max(float(np.ptp(images)), 1e-12)
        plots.append(str(plot_misclassified(images, truth, predicted,
                                            args.plot / "misclassified.png", names=names,
                                            what=f"{dataset} test images")))
    if args.json:
        print(json.dumps({"model": str(args.model), "dataset": dataset, "samples": len(truth),
                          "accuracy": accuracy, "per_class_accuracy": per_class,
                          "confusion_matrix": matrix.tolist(), "plots": plots}))
        return 0
    print(f"accuracy: {accuracy:.2%} ({int(np.trace(matrix))}/{len(truth)}) on {dataset} test")
    if not args.quiet:
        print("per-class accuracy: " + ", ".join(
            f"{names[c]}: {a:.1%}" if a is not None else f"{names[c]}: -"
            for c, a in enumerate(per_class)))
        print("confusion matrix (rows: true class, columns: predicted class):")
        width = max(5, len(str(matrix.max())) + 1)
        print("true\\pred" + "".join(f"{c:>{width}}" for c in range(k)))
        for c in range(k):
            print(f"{c:>9}" + "".join(f"{v:>{width}}" for v in matrix[c]))
        for p in plots:
            print(f"wrote {p}")
    return 0


def cmd_predict(args) -> int:
    """``portamlp predict``: the classes (and probabilities) a saved network gives test images
    (``--index``) or your own photos of digits; exit status 1 when a photo holds no digit."""
    from ..backends import to_numpy

    if not args.images and not args.index:
        raise CLIError("give image files to classify, or --index N for a test image")
    net = _load_model(args)
    dataset = _dataset(args)
    rows: list[np.ndarray] = []
    names: list[str] = []
    truth: list[int | None] = []
    blank: list[tuple[str, str]] = []
    if args.images:
        from ..images import BlankImageError, prepare_digit

        for path in args.images:
            try:
                rows.append(prepare_digit(path))
            except BlankImageError as exc:
                blank.append((str(path), str(exc)))
                continue
            names.append(str(path))
            truth.append(None)
    if args.index:
        from ..datasets import read_split

        images, labels = read_split(dataset, "test")
        for i in args.index:
            if not 0 <= i < len(labels):
                raise CLIError(f"--index {i} is out of range: the {dataset} test split has "
                               f"{len(labels)} images (0 to {len(labels) - 1})")
            rows.append(images[i])
            names.append(f"test image {i}")
            truth.append(int(labels[i]))
    results: list[dict] = []
    if rows:
        prep = preprocessing_for(args.model, net, dataset, args.scale)
        x = prep.apply(np.stack(rows).reshape(len(rows), -1), net.dtype)
        proba = to_numpy(net.predict_proba(x))
        classes = class_names(dataset, net.layers[-1])
        results = [{"input": n, "prediction": int(np.argmax(p)),
                    "class_name": classes[int(np.argmax(p))], "label": t,
                    "probabilities": [round(float(v), 6) for v in p]}
                   for n, p, t in zip(names, proba, truth)]
    for name, why in blank:  # the file's name once, then the reason without it
        why = why.removeprefix(f"{name}: ")
        print(f"portamlp: warning: {name}: no digit found ({why})", file=sys.stderr)
    if args.json:
        print(json.dumps(results + [{"input": n, "prediction": None, "error": "no digit found"}
                                    for n, _ in blank]))
        return 1 if blank else 0
    for r in results:
        def said(c: int) -> str:  # "9", or "9 Ankle boot" where classes have names
            return str(c) if classes[c] == str(c) else f"{c} {classes[c]}"

        label = f" (label {said(r['label'])})" if r["label"] is not None else ""
        print(f"{r['input']}: {said(r['prediction'])}{label}")
        if not args.quiet:
            print("  " + "  ".join(f"{c}:{p:.3f}" for c, p in enumerate(r["probabilities"])))
    return 1 if blank else 0


def cmd_info(args) -> int:
    """``portamlp info``: the versions, the backends usable here (with the reason for each that
    is not) and whether the fast steps can run."""
    import portamlp

    from ..files.run_records import environment

    env = environment()
    backends = portamlp.available_backends()
    devices = {name: str(portamlp.get_backend(name).device)
               for name, status in backends.items() if status.usable}
    auto = portamlp.get_backend("auto").name
    if args.json:
        print(json.dumps({"environment": env, "auto": auto, "devices": devices,
                          "backends": {k: {"usable": s.usable, "reason": s.reason}
                                       for k, s in backends.items()}}))
        return 0
    print(f"portamlp {portamlp.__version__} on Python {env['python']} ({env['platform']})")
    for pkg, ver in env["packages"].items():
        print(f"  {pkg} {ver}")
    print("backends:")
    for name, status in backends.items():
        state = f"usable, device {devices[name]}" if status else f"not usable: {status.reason}"
        print(f"  {name:<17} {state}")
    print(f"auto selects: {auto}")
    from ..backends.generic import installed_libraries

    others = installed_libraries()
    if others:
        print("other Array API libraries here, served by the generic entry: " + ", ".join(
            f"{name} (backend={module!r})" for name, module in others.items()))
    from ..fast import FAST_STEPS

    with_fast = [name for name in FAST_STEPS if backends.get(name)]
    fast = (f"used on {', '.join(with_fast)} where it applies (fast_path='auto')" if with_fast
            else f"needs a usable {' or '.join(FAST_STEPS)}")
    print(f"fast step (CuPy's kernels in CUDA graphs, JAX's compiled epoch): {fast}")
    return 0
