"""The same training on a CUDA GPU through CuPy: only ``backend="cupy"`` changes.

Needs CuPy for your CUDA version:  pip install "portamlp[cuda12]"   (or portamlp[cuda13])

    python examples/gpu.py            # CuPy
    python examples/gpu.py numpy      # the same script on the CPU
"""

import sys

import portamlp


def main(backend="cupy", **overrides):
    options = dict(layers=[784, 256, 128, 10], activation="relu", cost="cross_entropy",
                   batch_size=128, learning_rate=0.1, momentum=0.9, epochs=10, seed=0)
    options.update(overrides)
    try:
        result = portamlp.train(backend=backend, **options)
    except ValueError as exc:  # e.g. CuPy missing or no CUDA device: the message says what to do
        sys.exit(f"error: {exc}")
    device = result.network.backend.device
    print(f"trained on {backend} ({device}); test accuracy {result.test_accuracy:.2%}; "
          f"{sum(r.seconds for r in result.history):.1f} s in all")
    return result


if __name__ == "__main__":
    main(*sys.argv[1:2])
