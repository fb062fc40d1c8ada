"""The original program's default run: train a small sigmoid network, test it, save it.

Its hyper-parameters: N(0, 1) initial weights, quadratic cost, sigmoid, mini-batches of 10,
learning rate 3.0, pixels divided by 256, 50,000 training and 10,000 validation images.

    python examples/original_program.py
"""

import portamlp


def main(path="original-784-16-16-10.json", **overrides):
    options = dict(
        layers=[784, 16, 16, 10], epochs=3, batch_size=10, learning_rate=3.0,
        activation="sigmoid", cost="quadratic", init="normal", scale=256,
        train_length=50_000, validation_length=10_000, test_length=10_000,
    )
    options.update(overrides)
    rows, batch = options["train_length"], options["batch_size"]
    if rows % batch:  # the original program's warning (portamlp uses the short batch quietly)
        print(f"warning: {rows} training images are not a multiple of the batch size {batch}; "
              f"the last mini-batch of each epoch has {rows % batch}")
    result = portamlp.train(**options)
    for record in result.history:
        print(f"epoch {record.epoch}: validation accuracy {record.validation_accuracy:.2%} "
              f"({record.seconds:.2f} s)")
    print(f"test accuracy: {result.test_accuracy:.2%}")
    result.network.save(path, overwrite=True)  # this example replaces its own earlier output
    print(f"saved to {path}")
    return result


if __name__ == "__main__":
    main()
