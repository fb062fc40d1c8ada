"""Profile portamlp's training loop with pyinstrument, to see where an epoch's time goes.

    pip install pyinstrument
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/profile_step.py --batch 10

This is how the per-step overheads over the plain NumPy loop (bench/floor.py) were found and
removed: the batch mean folded into the optimizer's step size, the cost's constant factor applied
once per epoch, cheaper sum and take in the NumPy namespace, no per-batch host sync.
"""

import argparse
import warnings

import portamlp


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="784,30,10")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--relu", action="store_true", help="ReLU + cross-entropy + momentum")
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("this script needs pyinstrument: pip install pyinstrument") from None
    x, y = portamlp.datasets.load_mnist("train", length=50_000)
    options = dict(x=x, y=y, layers=[int(s) for s in args.layers.split(",")],
                   batch_size=args.batch, epochs=args.epochs, seed=0, progress=False)
    if args.relu:
        options.update(activation="relu", cost="cross_entropy", learning_rate=0.05, momentum=0.9)
    profiler = Profiler(interval=0.0002)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profiler.start()
        result = portamlp.train(**options)
        profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    print("seconds per epoch:", [round(r.seconds, 3) for r in result.history])


if __name__ == "__main__":
    main()
