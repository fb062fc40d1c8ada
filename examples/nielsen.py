"""Nielsen's chapter 1 network: 784-30-10, sigmoid, quadratic cost, batch 10, η = 3.0, 30 epochs,
N(0, 1) initial weights (chapter 1's; portamlp's sigmoid default is his chapter 3's N(0, 1/n_in)).

His book reports about 95 % on the test images. Runs in about 10 s on a laptop CPU.

    python examples/nielsen.py
"""

import portamlp


def report(record, network):
    """Print one line per epoch, like network.py does."""
    print(f"Epoch {record.epoch}: {record.validation_accuracy:.2%} on validation "
          f"(cost {record.train_cost:.4f}, {record.seconds:.2f} s)")


def main(**overrides):
    options = dict(layers=[784, 30, 10], epochs=30, batch_size=10, learning_rate=3.0,
                   init="normal", seed=1)
    options.update(overrides)
    result = portamlp.train(callbacks=[report], **options)
    print(f"test accuracy: {result.test_accuracy:.2%}")
    return result


if __name__ == "__main__":
    main()
