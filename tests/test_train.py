"""train(): learning on every backend, agreement between backends, the caller's own data,
warnings, callbacks and the validation of options."""

import warnings

import numpy as np
import pytest

import portamlp
from portamlp import Network, PortamlpWarning

SMALL = dict(train_length=5000, validation_length=1000, test_length=1000)


def test_learns_mnist_subset_on_every_backend(backend):
    result = portamlp.train(layers=(784, 64, 10), activation="relu", cost="cross_entropy",
                            learning_rate=0.05, momentum=0.9, batch_size=25, epochs=4, seed=0,
                            backend=backend, **SMALL)
    assert result.test_accuracy >= 0.85
    assert result.network.backend.name == backend.name
    assert len(result.history) == 4
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert all(0.0 <= h.validation_accuracy <= 1.0 and h.seconds > 0 for h in result.history)


def test_classic_sigmoid_quadratic_learns():
    result = portamlp.train(epochs=3, seed=2, init="scaled", **SMALL)
    assert result.test_accuracy >= 0.85
    assert result.config.layers == (784, 30, 10) and result.config.batch_size == 10


def test_numpy_and_array_api_strict_agree_after_hundreds_of_steps(mnist_small):
    x, y = mnist_small[0][:3000], mnist_small[1][:3000]
    runs = {}
    for name, device in (("numpy", None), ("array_api_strict", "device1")):
        r = portamlp.train(x=x, y=y, layers=(784, 16, 10), dtype="float64", batch_size=10,
                           epochs=1, learning_rate=3.0, seed=7, backend=name, device=device)
        runs[name] = r.network.host_parameters()
    for a, b in zip(sum(runs["numpy"], []), sum(runs["array_api_strict"], [])):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)


def test_torch_agrees_with_numpy_over_a_short_run(mnist_small):
    if not portamlp.available_backends()["torch"]:
        pytest.skip("torch is not installed")
    x, y = mnist_small[0][:200], mnist_small[1][:200]
    params = [portamlp.train(x=x, y=y, layers=(784, 16, 10), dtype="float64", epochs=1, seed=7,
                             backend=name).network.host_parameters() for name in ("numpy", "torch")]
    for a, b in zip(sum(params[0], []), sum(params[1], [])):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_cupy_agrees_with_numpy_after_10_steps(mnist_small):
    if not portamlp.available_backends()["cupy"]:
        pytest.skip(f"cupy: {portamlp.available_backends()['cupy'].reason}")
    x, y = mnist_small[0][:100], mnist_small[1][:100]
    params = [portamlp.train(x=x, y=y, layers=(784, 30, 10), epochs=1, seed=7, batch_size=10,
                             backend=name).network.host_parameters() for name in ("numpy", "cupy")]
    for a, b in zip(sum(params[0], []), sum(params[1], [])):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_same_seed_same_result_different_seed_different_result():
    kw = dict(layers=(784, 10, 10), epochs=1, train_length=500, validation_length=0,
              test_length=100)
    a = portamlp.train(seed=5, **kw)
    b = portamlp.train(seed=5, **kw)
    c = portamlp.train(seed=6, **kw)
    wa, wb, wc = (r.network.host_parameters()[0][0] for r in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)
    assert a.test_accuracy == b.test_accuracy


def test_seed_none_is_recorded_and_reproducible():
    kw = dict(layers=(784, 10, 10), epochs=1, train_length=200, validation_length=0, test_length=0)
    first = portamlp.train(**kw)
    assert isinstance(first.config.seed, int)
    again = portamlp.train(seed=first.config.seed, **kw)
    np.testing.assert_array_equal(first.network.host_parameters()[0][1],
                                  again.network.host_parameters()[0][1])
    assert first.test_accuracy is None


def test_own_data_with_validation_and_test(backend, rng):
    # two well separated blobs in 4-D
    x = np.concatenate([rng.normal(-2, 1, (100, 4)), rng.normal(2, 1, (100, 4))]).astype(np.float32)
    y = np.repeat([0, 1], 100)
    seen = []
    result = portamlp.train(x=x, y=y, validation_data=(x[::2], y[::2]), test_data=(x, y),
                            layers=(4, 8, 2), activation="tanh", cost="cross_entropy",
                            learning_rate=0.5, epochs=3, batch_size=20, seed=1, backend=backend,
                            callbacks=[lambda rec, net: seen.append(rec.epoch)])
    assert seen == [1, 2, 3]
    assert result.test_accuracy >= 0.95
    assert result.history[-1].validation_accuracy >= 0.95
    # the caller's arrays are not modified
    assert x.dtype == np.float32 and y[0] == 0


def test_device_arrays_are_used_in_place(backend, rng):
    x = backend.asarray(rng.standard_normal((30, 3)), "float32")
    y = backend.asarray(np.arange(30) % 2)
    result = portamlp.train(x=x, y=y, layers=(3, 2), epochs=1, batch_size=10, seed=0,
                            learning_rate=0.1, backend=backend)
    assert result.network.backend.name == backend.name


def test_continue_training_an_existing_network(mnist_small):
    x, y, xt, yt = mnist_small
    net = Network.initialize((784, 20, 10), activation="relu", cost="cross_entropy", seed=3,
                             backend="numpy")
    w_id = id(net.weights[0])
    before = net.evaluate(xt, yt)
    result = portamlp.train(x=x, y=y, network=net, epochs=1, learning_rate=0.05, seed=0)
    assert result.network is net and id(net.weights[0]) == w_id
    assert net.evaluate(xt, yt) > before + 0.3
    with pytest.raises(ValueError, match="'sigmoid' differs"):
        portamlp.train(x=x, y=y, network=net, activation="sigmoid")
    with pytest.raises(ValueError, match="differs from the given network"):
        portamlp.train(x=x, y=y, network=net, layers=(784, 30, 10))


def test_callback_returning_true_stops_training():
    calls = []

    def stop_after_two(record, network):
        calls.append(record.epoch)
        return record.epoch == 2

    result = portamlp.train(layers=(784, 10, 10), epochs=5, train_length=100,
                            validation_length=0, test_length=0, seed=0, callbacks=[stop_after_two])
    assert calls == [1, 2] and len(result.history) == 2 and result.stopped_early


def test_partial_last_batch_is_used_quietly():
    x = np.eye(4, dtype=np.float32)[np.arange(7) % 4]
    y = np.arange(7) % 2
    net = Network.from_arrays([np.zeros((2, 4))], [np.zeros(2)], backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as scikit-learn and Keras: no warning for it
        portamlp.train(x=x, y=y, network=net, batch_size=3, epochs=1, shuffle=False,
                       learning_rate=1.0, seed=0)
    # the 7th sample (row 2, class 0) was in the last batch: its weights moved
    assert net.weights[0][0, 2] != 0.0


def test_never_predicted_class_is_warned_about():
    # A network whose output 9 is hopelessly saturated off: class 9 is never predicted.
    net = Network.initialize((784, 10), seed=0, backend="numpy")
    net.biases[0][9] = -1e4
    x, y = portamlp.datasets.load_mnist("train", length=500)
    with pytest.warns(PortamlpWarning, match=r"never predicts class\(es\) \[9\].*"
                                            r"try cost='cross_entropy'$"):
        r = portamlp.train(x=x, y=y, validation_data=(x, y), network=net, epochs=1,
                           learning_rate=1.0, batch_size=50, seed=0)
    assert r.history[0].never_predicted == [9]
    assert r.history[0].predicted_counts[9] == 0 and sum(r.history[0].predicted_counts) == 500
    assert r.history[0].label_counts == np.bincount(y, minlength=10).tolist()


@pytest.mark.parametrize("options, advice", [
    # N(0, 1) weights and the quadratic cost: both cures
    (dict(init="normal"), {"init": "scaled", "cost": "cross_entropy"}),
    # the sigmoid's own initialisation is already scaled: only the cost
    (dict(), {"cost": "cross_entropy"}),
    (dict(init="glorot", cost="cross_entropy"), {"learning_rate": 1.0}),
    # η = 100 on 30 hidden units: the width's limit (300 / 30) names the rate
    (dict(learning_rate=100.0), {"cost": "cross_entropy", "learning_rate": 10.0}),
    (dict(learning_rate=3.0, layers=(784, 512, 10)),
     {"cost": "cross_entropy", "learning_rate": 0.5}),
    # momentum 0.9 multiplies the step by 10: the limit shrinks with it
    (dict(learning_rate=3.0, momentum=0.9, layers=(784, 100, 10)),
     {"cost": "cross_entropy", "learning_rate": 0.3}),
])
def test_dead_class_advice_follows_the_settings_in_use(options, advice):
    from portamlp.training.advice import dead_class_options
    from portamlp.training.config import TrainConfig

    config = TrainConfig(**TrainConfig.split({"layers": (784, 30, 10), **options}))
    assert dead_class_options(config, config.layers) == advice


def test_quiet_by_default(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        portamlp.train(layers=(784, 30, 10), epochs=2, train_length=2000, validation_length=500,
                       test_length=100, cost="cross_entropy", learning_rate=0.5, seed=0)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_bar_when_asked(capsys):
    portamlp.train(layers=(784, 10, 10), epochs=1, train_length=100, validation_length=0,
                   test_length=0, seed=0, progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_divergence_is_reported():
    x = np.random.default_rng(0).standard_normal((40, 3)) * 100
    with pytest.raises(portamlp.DivergenceError, match="epoch 1.*learning rate"):
        with np.errstate(all="ignore"):
            portamlp.train(x=x, y=np.arange(40) % 2, layers=(3, 8, 2), activation="leaky_relu",
                           epochs=1, learning_rate=1e10, batch_size=4, seed=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(layers=(784,)), ValueError, "at least 2"),
    (dict(layers=(100, 10)), ValueError, "784 pixels"),
    (dict(batch_size=0), ValueError, "batch_size=0"),
    (dict(batch_size=-3), ValueError, "batch_size=-3"),
    (dict(batch_size=2.5), TypeError, "batch_size"),
    (dict(learning_rate=0), ValueError, "learning_rate=0"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate=-1.0"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate=nan"),
    (dict(activation="swish"), ValueError, "'swish'"),
    (dict(cost="hinge"), ValueError, "'hinge'"),
    (dict(backend="no_such_library"), ValueError, "'no_such_library'"),
    (dict(optimizer="rmsprop"), ValueError, "'rmsprop'"),
    (dict(epochs=-1, train_length=10), ValueError, "epochs=-1"),
    (dict(momentum=1.5), ValueError, "momentum=1.5"),
    (dict(nesterov=True), ValueError, "nesterov"),
    (dict(dtype="float16"), ValueError, "'float16'"),
    (dict(train_length=59000, validation_length=2000), ValueError, "exceed the 60000"),
    (dict(test_length=20000), ValueError, "test_length=20000"),
    (dict(dataset="no-such-set"), ValueError, "no-such-set"),
    (dict(scale=100), ValueError, "scale=100"),
    (dict(learnig_rate=0.1), TypeError, "learnig_rate"),
    (dict(callbacks=[3]), TypeError, "callables"),
])
def test_bad_arguments_name_the_value(kwargs, error, match):
    kwargs.setdefault("epochs", 1)
    with pytest.raises(error, match=match):
        portamlp.train(**kwargs)


def test_bad_own_data_is_explained(rng):
    x = rng.standard_normal((10, 5))
    with pytest.raises(ValueError, match=r"\(n_samples, 784\)"):
        portamlp.train(x=x, y=np.zeros(10, dtype=int), layers=(784, 30, 10))
    with pytest.raises(ValueError, match="both x and y"):
        portamlp.train(x=x)
    with pytest.raises(ValueError, match="10 samples but 9 labels"):
        portamlp.train(x=x, y=np.zeros(9, dtype=int), layers=(5, 2))
    with pytest.raises(ValueError, match="class indices 0, 1, 2, ...; found 0.5"):
        portamlp.train(x=x, y=np.full(10, 0.5), layers=(5, 2))
    with pytest.raises(TypeError, match="integer class indices"):
        portamlp.train(x=x, y=np.array(["a"] * 10), layers=(5, 2))
    with pytest.raises(TypeError, match="pair"):
        portamlp.train(x=x, y=np.arange(10) % 2, layers=(5, 2), validation_data=x)


def test_trains_on_a_folder_of_idx_files_and_a_named_set_from_root(tmp_path):
    from portamlp.datasets import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for split, n in (("train", 600), ("t10k", 100)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        images[np.arange(n), labels * 2 + 3, :] = 255  # a bright row that encodes the class
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
    kw = dict(layers=(784, 32, 10), cost="cross_entropy", learning_rate=0.5, epochs=3,
              batch_size=20, validation_length=100, seed=0)
    by_path = portamlp.train(dataset=str(folder), **kw)
    by_name = portamlp.train(dataset="fashion-mnist", root=tmp_path, **kw)
    assert by_path.test_accuracy == by_name.test_accuracy >= 0.9
    assert len(by_path.history) == 3


def test_missing_named_data_set_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAMLP_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("portamlp.datasets.sources.SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setattr("portamlp.datasets.fetch.cache_dir", lambda: tmp_path / "cache")
    with pytest.raises(FileNotFoundError) as info:
        portamlp.train(dataset="kmnist", epochs=1)
    msg = str(info.value)
    assert "download=True" in msg and "PORTAMLP_DATA" in msg and "root=" in msg


@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
def test_reported_train_loss_is_the_mean_cost_over_the_epoch(cost, rng):
    x = rng.standard_normal((40, 6)).astype(np.float64)
    y = rng.integers(0, 3, 40)
    net = Network.initialize((6, 5, 3), cost=cost, dtype="float64", seed=0, backend="numpy")
    before = net.mean_cost(x, y)
    # learning rate tiny: the weights barely move, so the epoch's running mean ≈ the loss before
    r = portamlp.train(x=x, y=y, network=net, epochs=1, batch_size=8, learning_rate=1e-9,
                       shuffle=False, seed=0)
    assert r.history[0].train_loss == pytest.approx(before, rel=1e-6)
    assert before > 0


def test_threads_option_limits_blas_during_training_only(rng):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]

    before = blas_threads()
    seen = []
    x = rng.standard_normal((50, 4)).astype(np.float32)
    y = np.arange(50) % 2
    portamlp.train(x=x, y=y, layers=(4, 3, 2), epochs=1, batch_size=10, seed=0, threads=1,
                   callbacks=[lambda r, n: seen.append(blas_threads())])
    assert seen and all(t == 1 for t in seen[0])
    assert blas_threads() == before
    with pytest.raises(ValueError, match="threads=0"):
        portamlp.train(x=x, y=y, layers=(4, 3, 2), threads=0)


def test_default_threads_policy():
    from portamlp.backends import threads

    assert threads.blas_threads((784, 30, 10), 10) == 1  # small products: one thread
    assert threads.blas_threads((784, 30, 10), 10, threads=3) == 3
    n = threads.blas_threads((784, 1024, 1024, 10), 256)
    assert 1 <= n <= threads._cores()
    idle = threads.idle_cores()
    assert idle is None or 0.0 <= idle <= (threads.os.cpu_count() or 1)


def test_given_network_accepts_its_own_backend_and_device(mnist_small):
    x, y = mnist_small[0][:200], mnist_small[1][:200]
    net = Network.initialize((784, 8, 10), seed=0, backend="array_api_strict", device="device1")
    result = portamlp.train(x=x, y=y, network=net, backend="array_api_strict", device="device1",
                            epochs=1, seed=0)
    assert result.network is net
    same = portamlp.train(x=x, y=y, network=net, backend=net.backend, epochs=1, seed=0)
    assert same.network is net
    with pytest.raises(ValueError, match="lives on array_api_strict.*network.to"):
        portamlp.train(x=x, y=y, network=net, backend="numpy", epochs=1)
    with pytest.raises(ValueError, match="lives on array_api_strict.*network.to"):
        portamlp.train(x=x, y=y, network=net, device="device2", epochs=1)


def test_dead_classes_are_reported_when_they_stay_dead_not_for_one_epoch():
    from portamlp.files.run_records import EpochRecord
    from portamlp.training.config import TrainConfig
    from portamlp.training.hooks import DeadClasses

    def records(*dead):
        return [EpochRecord(epoch=i + 1, seconds=0.0, train_cost=0.0, never_predicted=d)
                for i, d in enumerate(dead)]

    def warnings_for(*dead):
        watcher = DeadClasses(TrainConfig(layers=(784, 30, 10)), (784, 30, 10))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = records(*dead)
            for r in history:
                watcher.see(r, last=r is history[-1])
        return [str(w.message) for w in caught]

    assert warnings_for([3], [], [], []) == []  # epoch 1 only, and the run recovered
    assert len(warnings_for([3], [3], [3], [3], [3])) == 1  # once, after 3 epochs
    assert "after epoch 3 " in warnings_for([3], [3], [3], [3])[0]
    assert "after epoch 2 " in warnings_for([], [5])[0]  # still dead at the end
