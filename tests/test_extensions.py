"""Each kind of extension is one entry in one place: an activation, an optimizer and a backend,
added in a test-only way (``REGISTRY.added(entry)``), work on every surface with nothing else
edited: train(), Network, the command line, TOML files, both model file formats, checkpoints,
the documentation's options table, the estimator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ReadOnlyNumPy

import portamlp
from portamlp.backends import LIBRARIES, get_backend
from portamlp.checks import check_float
from portamlp.cli.main import main
from portamlp.cli.training import read_config
from portamlp.nn.activations import ACTIVATIONS, Activation
from portamlp.nn.init import INITS, initial_parameters
from portamlp.training.config import options_table
from portamlp.training.optimizers import OPTIMIZERS, HyperParameter, Optimizer

pytestmark = pytest.mark.filterwarnings("ignore::portamlp.PortamlpWarning")

SOFTPLUS = Activation(
    "softplus", lambda xp, z: xp.where(z > 20.0, z, xp.log(1.0 + xp.exp(xp.minimum(z, 20.0)))),
    lambda xp, z, a: 1.0 - xp.exp(-a), init="scaled")


class RMSpropTest(Optimizer):
    """RMSprop, a test-only optimizer with a hyper-parameter of its own."""

    name = "rmsprop_test"
    help = "RMSprop (a test-only entry)"
    hyper_parameters = (HyperParameter(
        "rho", 0.9, "decay of the squared gradient's running mean, in [0, 1)",
        lambda n, v: check_float(n, v, minimum=0.0, below=1.0)),)
    rho: float

    def __init__(self, params, backend, **options):
        super().__init__(params, backend, **options)
        self.square = [self.xp.zeros_like(p) for p in params]

    def update(self, grads, scale):
        write, xp = self.write, self.xp
        for i, g in enumerate(grads):
            g = g * scale
            s = self.square[i] = write.add(write.multiply(self.square[i], self.rho),
                                           (1.0 - self.rho) * (g * g))
            self.params[i] = write.subtract(self.params[i],
                                            self.learning_rate * g / (xp.sqrt(s) + 1e-8))

    def state_arrays(self):
        return {f"square.{i}": s for i, s in enumerate(self.square)}

    def load_state(self, arrays, scalars):
        super().load_state(arrays, scalars)
        self.square = [arrays[f"square.{i}"] for i in range(len(self.params))]


@pytest.fixture
def softplus():
    with ACTIVATIONS.added(SOFTPLUS):
        yield SOFTPLUS


@pytest.fixture
def rmsprop():
    with OPTIMIZERS.added(RMSpropTest):
        yield RMSpropTest


SMALL = dict(train_length=500, validation_length=100, test_length=200, batch_size=20, seed=0,
             progress=False)


# --------------------------------------------------------------------------------- activation
def test_an_activation_added_in_one_place_trains_and_its_gradient_is_right(softplus):
    result = portamlp.train(activation="softplus", cost="cross_entropy", learning_rate=0.1,
                            epochs=3, **SMALL)
    assert result.network.activation == "softplus" and result.config.activation == "softplus"
    assert result.history[-1].train_cost < result.history[0].train_cost
    assert result.test_accuracy > 0.7
    # its derivative is what backpropagation uses: central differences agree
    rng = np.random.default_rng(1)
    net = portamlp.Network.initialize((5, 4, 3), activation="softplus", dtype="float64", seed=2)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    gw, _ = net.gradients(x, y)
    w = net.weights[0]
    h = 1e-6
    for i, j in [(0, 0), (2, 3), (3, 1)]:
        w[i, j] += h
        up = net.mean_cost(x, y)
        w[i, j] -= 2 * h
        down = net.mean_cost(x, y)
        w[i, j] += h
        assert gw[0][i, j] == pytest.approx((up - down) / (2 * h), rel=1e-5)


def test_the_activations_own_initialisation_is_the_auto_one(softplus):
    net = portamlp.Network.initialize((6, 4, 2), activation="softplus", dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    scaled = [INITS["scaled"].draw(rng, 6, 4), INITS["scaled"].draw(rng, 4, 2)]
    for got, want in zip(net.host_parameters()[0], [w for w, _ in scaled]):
        np.testing.assert_array_equal(got, want)
    assert initial_parameters((6, 4, 2), "auto", np.random.default_rng(0), "float64",
                              auto="he")[0][0].std() != net.host_parameters()[0][0].std()


@pytest.mark.parametrize("suffix", [".json", ".safetensors"])
def test_an_added_activation_is_saved_and_loaded_in_both_formats(softplus, tmp_path, suffix):
    net = portamlp.Network.initialize((6, 4, 3), activation="softplus", seed=0)
    path = tmp_path / f"net{suffix}"
    net.save(path)
    back = portamlp.load(path)
    assert back.activation == "softplus"
    x = np.random.default_rng(0).standard_normal((5, 6))
    np.testing.assert_array_equal(back.predict_proba(x), net.predict_proba(x))


def test_an_added_activation_on_the_command_line_and_in_toml(softplus, tmp_path, capsys):
    save = tmp_path / "net.safetensors"
    status = main(["train", "--activation", "softplus", "--epochs", "1", "--train-length",
                   "200", "--validation-length", "0", "--test-length", "100", "--batch-size",
                   "20", "--learning-rate", "0.5", "--seed", "0", "--save", str(save),
                   "--json", "--quiet"])
    assert status == 0
    record = json.loads(capsys.readouterr().out)
    assert record["options"]["activation"] == "softplus"
    assert portamlp.load(save).activation == "softplus"
    config = tmp_path / "run.toml"
    config.write_text('activation = "softplus"\nepochs = 1\n')
    assert read_config(config)["activation"] == "softplus"
    assert main(["evaluate", str(save), "--quiet"]) == 0
    assert "softplus" in options_table()


def test_without_the_entries_their_names_are_refused_everywhere(tmp_path):
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        portamlp.train(activation="softplus", epochs=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'rho'"):
        portamlp.train(rho=0.5, epochs=1)
    assert "softplus" not in options_table() and "`rho`" not in options_table()
    assert main(["train", "--activation", "softplus", "--epochs", "1"]) == 2


# ---------------------------------------------------------------------------------- optimizer
def test_an_optimizer_added_in_one_place_trains_with_its_hyper_parameter(rmsprop):
    options = dict(optimizer="rmsprop_test", activation="relu", learning_rate=0.003,
                   cost="cross_entropy", epochs=2, **SMALL)
    a = portamlp.train(rho=0.5, **options)
    b = portamlp.train(**options)
    assert a.config.rho == 0.5 and b.config.rho == 0.9 and a.config.to_dict()["rho"] == 0.5
    assert a.test_accuracy > 0.6
    assert not np.allclose(a.network.host_parameters()[0][0], b.network.host_parameters()[0][0])
    with pytest.raises(ValueError, match=r"rho=1.5 must be >= 0.0 and < 1.0"):
        portamlp.train(optimizer="rmsprop_test", rho=1.5, epochs=1)
    with pytest.raises(ValueError, match="rho=0.5 applies to optimizer='rmsprop_test', not "
                                         "optimizer='sgd'"):
        portamlp.train(rho=0.5, epochs=1)
    row = [line for line in options_table().splitlines() if line.startswith("| `rho` |")]
    assert row and "rmsprop_test" in row[0]
    assert "'rmsprop_test'" in options_table()


def test_an_added_optimizers_state_is_checkpointed_and_resumes_exactly(rmsprop, tmp_path):
    options = dict(optimizer="rmsprop_test", rho=0.8, learning_rate=0.01, cost="cross_entropy",
                   **SMALL)
    whole = portamlp.train(epochs=2, **options)
    portamlp.train(epochs=1, checkpoint=tmp_path, **options)
    resumed = portamlp.train(epochs=2, resume=tmp_path, **options)
    for p, q in zip(whole.network.parameters(), resumed.network.parameters()):
        np.testing.assert_array_equal(p, q)
    assert set(resumed.optimizer_state["arrays"]) == {f"square.{i}" for i in range(4)}


def test_an_added_optimizer_on_the_command_line_and_in_toml(rmsprop, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('optimizer = "rmsprop_test"\nrho = 0.7\nlearning_rate = 0.01\n')
    assert read_config(config) == {"optimizer": "rmsprop_test", "rho": 0.7,
                                   "learning_rate": 0.01}
    save = tmp_path / "net.json"
    status = main(["train", "--config", str(config), "--rho", "0.6", "--epochs", "1",
                   "--train-length", "200", "--validation-length", "0", "--test-length", "0",
                   "--batch-size", "20", "--save", str(save), "--json", "--quiet"])
    assert status == 0
    record = json.loads(capsys.readouterr().out)
    assert record["options"]["optimizer"] == "rmsprop_test"
    assert record["options"]["rho"] == 0.6  # the flag wins over the file
    status = main(["train", "--optimizer", "sgd", "--rho", "0.6", "--epochs", "1"])
    assert status == 2
    assert "--rho 0.6 applies to --optimizer 'rmsprop_test', not --optimizer 'sgd'" in \
        capsys.readouterr().err


# ------------------------------------------------------------------------------------ backend
class ReadOnlyEntry(ReadOnlyNumPy):
    """A backend entry registered under its own name (a library without in-place updates)."""

    name = "numpy_read_only"
    distributions = ("numpy",)


def test_a_backend_entry_added_in_one_place_trains_without_in_place_updates(tmp_path):
    entry = ReadOnlyEntry()
    with LIBRARIES.added(entry):
        assert portamlp.available_backends()["numpy_read_only"].usable
        be = get_backend("numpy_read_only")
        assert be.library is entry and not be.in_place
        options = dict(layers=(784, 16, 10), activation="relu", cost="cross_entropy",
                       learning_rate=0.05, epochs=3, early_stopping=True, patience=1,
                       max_norm=2.0, **SMALL)
        result = portamlp.train(backend="numpy_read_only", momentum=0.9, **options)
        net = result.network
        assert net.backend.library is entry
        assert all(not p.flags.writeable for p in net.parameters())  # never written in place
        reference = portamlp.train(backend="numpy", momentum=0.9, **options)
        for p, q in zip(net.parameters(), reference.network.parameters()):
            np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
        assert result.best_epoch == reference.best_epoch
        # Adam, checkpoints and an exact resume, on the same entry
        adam = dict(options, optimizer="adam", learning_rate=1e-3, early_stopping=False)
        whole = portamlp.train(backend="numpy_read_only", **adam)
        portamlp.train(backend="numpy_read_only", checkpoint=tmp_path, **dict(adam, epochs=2))
        resumed = portamlp.train(backend="numpy_read_only", resume=tmp_path, epochs=3)
        for p, q in zip(whole.network.parameters(), resumed.network.parameters()):
            np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match="unknown backend 'numpy_read_only'"):
        get_backend("numpy_read_only")


def test_the_shared_fixture_runs_every_entry_on_its_test_devices():
    from conftest import _CASES

    assert _CASES == [(n, d) for n, e in LIBRARIES.items() for d in e.test_devices]


def test_run_records_list_the_entries_distributions():
    from portamlp.files.run_records import packages

    names = packages()
    for entry in LIBRARIES.values():
        assert set(entry.distributions) <= set(names)
    with LIBRARIES.added(type("Fake", (ReadOnlyEntry,), {"name": "fake_backend",
                                                          "distributions": ("fakelib",)})()):
        assert "fakelib" in packages()



PLUGIN = '''
from portamlp.nn.activations import ACTIVATIONS, Activation

ACTIVATIONS.register(Activation(
    "softplus_plugin", lambda xp, z: xp.maximum(z, 0.0) + xp.log(1.0 + xp.exp(-xp.abs(z))),
    lambda xp, z, a: 1.0 - xp.exp(-a)))
'''


def test_the_command_imports_your_extensions_first(tmp_path):
    """``portamlp --import MODULE``: the entries a module of yours registers are choices and
    flags of the command, and the model files that use them load."""
    from cli_helpers import run

    (tmp_path / "my_extensions.py").write_text(PLUGIN)
    small = ["--epochs", "1", "--train-length", "200", "--validation-length", "0",
             "--test-length", "50", "--batch-size", "20", "--seed", "0"]
    proc = run("--import", "my_extensions", "train", "--activation", "softplus_plugin",
               *small, "--save", "net.json", "--quiet", cwd=tmp_path, process=True)
    assert "test accuracy" in proc.stdout
    run("--import", str(tmp_path / "my_extensions.py"), "evaluate", "net.json", "--quiet",
        cwd=tmp_path, process=True)
    refused = run("evaluate", "net.json", cwd=tmp_path, check=False, process=True)
    assert refused.returncode == 2 and "unknown activation 'softplus_plugin'" in refused.stderr
    assert "register it" in refused.stderr
    missing = run("--import", "no_such_module", "info", cwd=tmp_path, check=False)
    assert missing.returncode == 2
    assert "--import no_such_module: ModuleNotFoundError" in missing.stderr


def test_resuming_a_run_of_an_optimizer_not_registered_here_says_so(tmp_path):
    options = dict(optimizer="rmsprop_test", learning_rate=0.01, cost="cross_entropy", **SMALL)
    with OPTIMIZERS.added(RMSpropTest):
        portamlp.train(epochs=1, checkpoint=tmp_path, **options)
    with pytest.raises(ValueError, match="used optimizer='rmsprop_test', which is not "
                                         "registered here.*register it before resuming"):
        portamlp.train(resume=tmp_path, epochs=2)
    with OPTIMIZERS.added(RMSpropTest):  # registered again: it resumes
        assert len(portamlp.train(resume=tmp_path, epochs=2).history) == 2


@pytest.mark.parametrize("entry, match", [
    (Activation("sp2", SOFTPLUS.f, SOFTPLUS.f_prime, init="kaiming"),
     r"activation 'sp2': init='kaiming' is not an initialisation; choose one of \['normal'"),
    (Activation("sp3", SOFTPLUS.f, lambda xp, z: z), r"activation 'sp3': f_prime must be a "
                                                      r"function f_prime\(xp, z, a\)"),
    (Activation("sp4", SOFTPLUS.f, SOFTPLUS.f_prime, kernel_f="z"),
     "give both kernel_f and kernel_f_prime"),
    (Activation("relu", SOFTPLUS.f, SOFTPLUS.f_prime), "an activation named 'relu' is already"),
])
def test_an_activation_that_could_not_work_is_refused_when_registered(entry, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ACTIVATIONS.register(entry)
    assert entry.name not in ACTIVATIONS or entry.name == "relu"
