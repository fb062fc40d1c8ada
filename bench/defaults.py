"""The figures behind the defaults and the run advice (README, "Runs that go wrong say so").

* the default run, ``portamlp.train(seed=s)`` (784-30-10, 5 epochs), over seeds 0–4;
* 784-100-10 after one epoch at the default η = 3.0, with the sigmoid's own initialisation
  (N(0, 1/n_in)) and with N(0, 1) (Nielsen's chapter 1, the original program);
* the width rule of :mod:`portamlp.training.advice`: one epoch of plain SGD at the default rate
  and at the rate the collapse warning names, for hidden layers of 30 to 1,024 units (sigmoid,
  and ReLU with cross-entropy), each with the warning the run gave.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/defaults.py
    python bench/defaults.py --quick        # seconds: checks the script's logic
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, write_report  # noqa: E402

import portamlp  # noqa: E402

#: (label, options): the width rule's rows, at the default rate and at the named one.
WIDTHS = [
    ("784-30-10, η = 100", dict(layers=[784, 30, 10], learning_rate=100.0)),
    ("784-100-10, η = 3.0", dict(layers=[784, 100, 10])),
    ("784-512-10, η = 3.0", dict(layers=[784, 512, 10])),
    ("784-1024-10, η = 3.0", dict(layers=[784, 1024, 10])),
    ("784-512-10 ReLU/cross-entropy, η = 3.0",
     dict(layers=[784, 512, 10], activation="relu", cost="cross_entropy")),
]


def run(options: dict) -> tuple[float, list[str]]:
    """``(test accuracy, the advice the run gave)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = portamlp.train(progress=False, **options)
    said = [str(w.message) for w in caught if issubclass(w.category, portamlp.PortamlpWarning)]
    return result.test_accuracy, said


def named_rate(said: list[str]) -> float | None:
    """The learning rate a collapse warning names (``try learning_rate=0.5``), or None."""
    for message in said:
        if "has collapsed" in message and "try learning_rate=" in message:
            return float(message.split("try learning_rate=")[1].split()[0].rstrip(",;"))
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings")
    parser.add_argument("--output", help="the JSON report (default: bench/results/"
                        "defaults.json; none with --quick)")
    args = parser.parse_args(argv)
    small = dict(train_length=2000, validation_length=500, test_length=500) if args.quick \
        else {}
    seeds = [0] if args.quick else list(range(5))
    report: dict = {"machine": machine()}
    print(report["machine"])

    default = [run(dict(seed=s, epochs=1 if args.quick else 5, **small))[0] for s in seeds]
    report["default_run"] = dict(zip(map(str, seeds), default))
    print(f"default run (784-30-10, 5 epochs), seeds {seeds}: "
          + ", ".join(f"{a:.2%}" for a in default))

    report["784-100-10"] = {}
    for init in ("auto", "normal"):
        accuracy, _ = run(dict(layers=[784, 100, 10], epochs=1, seed=0, init=init, **small))
        report["784-100-10"][init] = accuracy
        print(f"784-100-10, one epoch, init={init!r}: {accuracy:.2%}")

    report["widths"] = []
    for label, options in WIDTHS[:2] if args.quick else WIDTHS:
        accuracy, said = run(dict(options, epochs=1, seed=0, **small))
        row = {"run": label, "accuracy": accuracy, "advice": said}
        rate = named_rate(said)
        line = f"{label}: {accuracy:.2%}"
        if rate is not None:
            row["named_rate"] = rate
            row["accuracy_at_named_rate"], _ = run(dict(options, learning_rate=rate, epochs=1,
                                                        seed=0, **small))
            line += f"; the warning names η = {rate:g}: {row['accuracy_at_named_rate']:.2%}"
        report["widths"].append(row)
        print(line)
    output = args.output or (None if args.quick else HERE / "results" / "defaults.json")
    if output is not None:
        write_report(output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
