"""Nothing lost, nothing trusted blindly: checkpoints and exact resume, signals, atomic writes
under SIGKILL, divergence, device memory, and train()'s arguments under hypothesis."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portamlp
from portamlp import DivergenceError, Network
from portamlp.files.checkpoints import checkpoint_path, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
RUN = dict(layers=(784, 16, 10), train_length=2000, validation_length=200, test_length=200,
           batch_size=20, learning_rate=0.5, seed=11)


def _params(net):
    w, b = net.host_parameters()
    return w + b


def _assert_same(a, b):
    for x, y in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("extra", [dict(momentum=0.9, nesterov=True),
                                   dict(optimizer="adam", learning_rate=0.01, cost="cross_entropy"),
                                   dict(learning_rate_schedule="cosine", weight_decay=1e-3)])
def test_stop_after_an_epoch_then_resume_gives_identical_weights(tmp_path, extra):
    options = dict(RUN, epochs=3, **extra)
    straight = portamlp.train(**options)
    first = portamlp.train(checkpoint=tmp_path, callbacks=[lambda r, n: r.epoch == 1], **options)
    assert first.stopped_early and len(first.history) == 1
    assert load_checkpoint(tmp_path).position.epoch == 2
    resumed = portamlp.train(resume=tmp_path)
    _assert_same(straight.network, resumed.network)
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    assert resumed.history[0] == first.history[0]
    assert resumed.test_accuracy == straight.test_accuracy


def test_resume_can_extend_but_not_change_a_run(tmp_path):
    portamlp.train(checkpoint=tmp_path, epochs=1, **RUN)
    longer = portamlp.train(resume=tmp_path, epochs=2)
    assert len(longer.history) == 2
    with pytest.raises(ValueError, match="learning_rate=0.1 differs"):
        portamlp.train(resume=tmp_path, learning_rate=0.1)
    with pytest.raises(FileExistsError, match="resume="):
        portamlp.train(checkpoint=tmp_path, epochs=1, **RUN)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        portamlp.train(resume=tmp_path / "nothing")


def test_resume_with_own_data(tmp_path, rng):
    x = rng.standard_normal((100, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    kw = dict(layers=(5, 4, 2), epochs=3, batch_size=10, learning_rate=0.3, momentum=0.5, seed=2)
    straight = portamlp.train(x=x, y=y, **kw)
    portamlp.train(x=x, y=y, checkpoint=tmp_path, callbacks=[lambda r, n: r.epoch == 2], **kw)
    _assert_same(straight.network, portamlp.train(x=x, y=y, resume=tmp_path).network)


CHILD_TRAIN = textwrap.dedent("""
    import sys, portamlp
    options = dict(layers=(784, 16, 10), validation_length=1000, test_length=500, epochs=12,
                   batch_size=10, learning_rate=1.0, momentum=0.5, seed=5)
    print("ready", flush=True)
    try:
        portamlp.train(checkpoint=sys.argv[1], **options)
    except portamlp.TrainingInterrupted as stop:
        print("interrupted", stop.checkpoint, flush=True)
        sys.exit(3)
    print("finished", flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_epoch_saves_a_checkpoint_and_resume_is_exact(tmp_path, sig):
    script = tmp_path / "child.py"
    script.write_text(CHILD_TRAIN)
    ckpt = tmp_path / "ckpt"
    child = subprocess.Popen([sys.executable, str(script), str(ckpt)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    deadline = time.time() + 60  # the first checkpoint: the handlers are in place
    while not checkpoint_path(ckpt).exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(random.uniform(0.02, 0.15))  # somewhere inside epoch 2 (about 0.2 s long)
    child.send_signal(sig)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 3, out + err
    assert "interrupted" in out and "Traceback" not in err
    position = load_checkpoint(ckpt).position
    assert (position.epoch, position.batch) > (1, 0)
    resumed = portamlp.train(resume=ckpt)
    options = dict(layers=(784, 16, 10), validation_length=1000, test_length=500, epochs=12,
                   batch_size=10, learning_rate=1.0, momentum=0.5, seed=5)
    straight = portamlp.train(**options)
    _assert_same(straight.network, resumed.network)
    assert len(resumed.history) == 12


@pytest.mark.slow
def test_command_line_interrupt_is_clean_and_says_how_to_resume(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-m", "portamlp", "train", "--epochs", "30", "--checkpoint", "ck",
         "--save", "net.json", "--seed", "1"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not checkpoint_path(tmp_path / "ck").exists() and time.time() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert "Traceback" not in err and "portamlp train --resume ck" in err
    # the network at its last complete epoch is kept too, with a run record saying so
    assert "saved the network at that epoch to net.json" in err
    record = json.loads((tmp_path / "net.run.json").read_text())
    assert record["interrupted"] is True and len(record["history"]) >= 1
    proc = subprocess.run([sys.executable, "-m", "portamlp", "train", "--resume", "ck",
                           "--epochs", "2", "--save", "net.json", "--force", "--quiet"],
                          cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert portamlp.load(tmp_path / "net.json").layers == (784, 30, 10)


CHILD_SAVE = textwrap.dedent("""
    import sys, portamlp
    from portamlp.files.checkpoints import save_checkpoint
    from portamlp.files.checkpoints import RunPosition
    from portamlp.training.optimizers import SGD
    path, kind = sys.argv[1], sys.argv[2]
    nets = [portamlp.Network.initialize((784, 64, 10), seed=s, backend="numpy") for s in (0, 1)]
    opts = [SGD(n.parameters(), n.backend, learning_rate=0.1, momentum=0.9) for n in nets]
    i = 0
    while True:
        if kind == "model":
            nets[i % 2].save(path, overwrite=True)
        else:
            save_checkpoint(path, nets[i % 2], opts[i % 2], {},
                            RunPosition(epoch=i + 1, rng_state={}), own_data=False)
        if i == 0:
            print("saved", flush=True)
        i += 1
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind, name, kills", [("model", "net.json", 12),
                                               ("model", "net.safetensors", 12),
                                               ("checkpoint", "ckpt", 10)])
def test_sigkill_during_saves_never_leaves_a_torn_file(tmp_path, kind, name, kills):
    script = tmp_path / "saver.py"
    script.write_text(CHILD_SAVE)
    target = tmp_path / name
    expected = [_params(Network.initialize((784, 64, 10), seed=s, backend="numpy"))
                for s in (0, 1)]
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, str(script), str(target), kind],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "saved"
        time.sleep(random.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if kind == "model":
            got = _params(portamlp.load(target))
        else:
            ck = load_checkpoint(target)
            got = ck.network_fields["weights"] + ck.network_fields["biases"]
            assert set(ck.optimizer_arrays) == {f"velocity.{i}" for i in range(4)}
        matches = [all(np.array_equal(g, e) for g, e in zip(got, exp)) for exp in expected]
        assert any(matches)


def test_divergence_names_epoch_and_batch_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(record, network):
        network.weights[0][0, 0] = np.nan  # after epoch 1 (its checkpoint is already written)

    with pytest.raises(DivergenceError, match=r"epoch 2, mini-batch 1 of 100.*learning rate"):
        portamlp.train(checkpoint=tmp_path, epochs=3, callbacks=[poison], **RUN)
    ck = load_checkpoint(tmp_path)
    assert ck.position.epoch == 2
    assert all(np.all(np.isfinite(a))
               for a in ck.network_fields["weights"] + ck.network_fields["biases"])


def test_divergent_learning_rate_stops_training():
    x = np.random.default_rng(0).standard_normal((40, 3)) * 100
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match="lower the learning"):
        portamlp.train(x=x, y=np.arange(40) % 2, layers=(3, 8, 2), activation="leaky_relu",
                       epochs=2, learning_rate=1e10, batch_size=4, seed=0)


def test_network_too_large_for_host_memory_is_explained():
    # the weights are drawn on the host first: running out there is host memory, named so
    with pytest.raises(MemoryError) as info:
        portamlp.train(layers=(784, 1 << 22, 1 << 22, 10), epochs=1, backend="numpy")
    msg = str(info.value)
    assert not isinstance(info.value, portamlp.DeviceMemoryError)
    assert "out of host memory" in msg and "drawing the initial weights" in msg
    assert "17,595,524,710,410 parameters" in msg and "140.8 TB" in msg and "smaller" in msg


# ----------------------------------------------------------------------------- hypothesis
_X = np.random.default_rng(0).standard_normal((24, 4)).astype(np.float32)
_Y = np.arange(24) % 3

anything = st.one_of(st.none(), st.booleans(), st.integers(-5, 50), st.floats(allow_nan=True),
                     st.text(max_size=5), st.lists(st.integers(-2, 6), max_size=4))
options = st.fixed_dictionaries({}, optional={
    "layers": st.one_of(st.lists(st.integers(-1, 6), max_size=4).map(lambda l: [4] + l + [3]),
                        anything),
    "batch_size": st.one_of(st.integers(-2, 30), anything),
    "epochs": st.one_of(st.integers(-1, 2), anything),
    "learning_rate": st.one_of(st.floats(-1, 5), anything),
    "activation": st.one_of(st.sampled_from(["sigmoid", "relu", "tanh", "leaky_relu", "x"]),
                            anything),
    "cost": st.one_of(st.sampled_from(["quadratic", "cross_entropy", "y"]), anything),
    "optimizer": st.one_of(st.sampled_from(["sgd", "adam", "z"]), anything),
    "momentum": st.one_of(st.floats(-0.5, 1.5), anything),
    "nesterov": anything,
    "weight_decay": st.one_of(st.floats(-1, 1), anything),
    "init": st.one_of(st.sampled_from(["auto", "normal", "scaled", "glorot", "he", "w"]),
                      anything),
    "dtype": st.one_of(st.sampled_from(["float32", "float64", "int8"]), anything),
    "train_length": st.one_of(st.integers(-1, 30), anything),
    "validation_length": st.one_of(st.integers(-1, 30), anything),
    "seed": st.one_of(st.integers(-3, 2**64), anything),
    "shuffle": anything,
    "learning_rate_schedule": st.one_of(st.sampled_from(["constant", "cosine", "q"]), anything),
    "scale": anything,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(opts=options, with_validation=st.booleans())
def test_train_either_trains_or_refuses_an_option_by_name(opts, with_validation):
    """Any combination of options trains, diverges (named), or is refused by a ValueError or
    TypeError that names an option it was given: never an error from deeper down (a shape
    mismatch, a bad index) passing as a refusal."""
    extra = {"validation_data": (_X, _Y)} if with_validation else {}
    try:
        with np.errstate(all="ignore"):
            result = portamlp.train(x=_X, y=_Y, progress=False, **extra, **opts)
    except DivergenceError:
        return
    except (ValueError, TypeError) as exc:
        message = str(exc)
        named = [name for name in [*opts, *extra] if name in message]
        assert named, f"a refusal that names none of {sorted(opts)}: {exc!r}"
        return
    assert isinstance(result.network, Network)
    # every epoch runs, unless a full-batch optimizer (L-BFGS) converged before the last
    assert len(result.history) == result.config.epochs or result.stopped_early


def test_out_of_memory_during_a_step_is_explained(monkeypatch):
    def exhausted(self, x, y, **kwargs):
        raise MemoryError("Unable to allocate 3.2 GiB for an array")

    monkeypatch.setattr(Network, "backprop", exhausted)
    with pytest.raises(portamlp.DeviceMemoryError, match=r"batch of 10 through layers \[784, "
                                                         r"30, 10\].*smaller batch_size"):
        portamlp.train(epochs=1, train_length=100, validation_length=0, test_length=0,
                       fast_path="off")  # the portable step's backprop runs out


# ---------------------------------------------------------- defects found in review (issue 10)
def test_resume_of_a_run_on_own_arrays_needs_them_again(tmp_path, mnist_small):
    x, y = mnist_small[0][:300], mnist_small[1][:300]
    portamlp.train(x=x, y=y, layers=(784, 8, 10), epochs=1, checkpoint=tmp_path, seed=0)
    with pytest.raises(ValueError, match="trained on your own arrays: pass the same x= and y="):
        portamlp.train(resume=tmp_path, epochs=2)
    resumed = portamlp.train(x=x, y=y, resume=tmp_path, epochs=2)
    assert len(resumed.history) == 2
    named = tmp_path / "named"
    portamlp.train(checkpoint=named, epochs=1, **RUN)
    with pytest.raises(ValueError, match="trained on the 'mnist' data set; resume it without"):
        portamlp.train(x=x, y=y, resume=named)


def _rewrite_checkpoint(path, change):
    """A checkpoint changed as a faulty writer would have written it (its checksum agrees with
    the change: the field checks behind the checksum are under test)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from portamlp.files.checkpoints import checksum

    with safe_open(str(path), "np") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(path))
    doc = json.loads(meta["portamlp.checkpoint"])
    tensors, doc = change(tensors, doc)
    text = json.dumps(doc)
    save_file(tensors, str(path), metadata={"portamlp.checkpoint": text,
                                            "portamlp.checksum": checksum(text, tensors)})


@pytest.mark.parametrize("change, match", [
    (lambda t, d: (t, {k: v for k, v in d.items() if k != "config"}), "field 'config'"),
    (lambda t, d: (t, {**d, "position": {**d["position"], "epoch": "two"}}),
     "'position' is malformed.*epoch must be an integer"),
    (lambda t, d: (t, {**d, "position": {k: v for k, v in d["position"].items()
                                         if k != "history"}}), "'position' is malformed"),
    (lambda t, d: (t, {**d, "own_data": "yes"}), "field 'own_data'"),
    (lambda t, d: ({**t, "optimizer.velocity.0": np.zeros((3, 3), np.float32)}, d),
     "optimizer tensor 'velocity.0' has shape"),
    (lambda t, d: ({**t, "optimizer.velocity.1": np.full(16, np.nan, np.float32)}, d),
     "'velocity.1' holds NaN"),
    (lambda t, d: ({k: v for k, v in t.items() if k != "network.2.bias"}, d),
     "missing tensor '2.bias'"),
    (lambda t, d: (t, {**d, "network": {**d["network"], "activation": 3}}),
     "'network.activation' must be a string"),
])
def test_malformed_checkpoint_names_file_and_field(tmp_path, change, match):
    """A malformed field, behind a checksum that agrees, is named."""
    portamlp.train(checkpoint=tmp_path, epochs=1, momentum=0.5, **RUN)
    path = checkpoint_path(tmp_path)
    _rewrite_checkpoint(path, change)
    with pytest.raises(portamlp.ModelFormatError, match=match) as info:
        portamlp.train(resume=tmp_path, epochs=2)
    assert str(path) in str(info.value)


def test_extending_a_cosine_run_warns_how_the_rates_change(tmp_path):
    portamlp.train(checkpoint=tmp_path, epochs=2, learning_rate_schedule="cosine", **RUN)
    with pytest.warns(portamlp.PortamlpWarning, match=r"remaining epochs follow the schedule "
                                                      r"over 4 epochs \(the first 2 followed it "
                                                      r"over 2\)"):
        longer = portamlp.train(resume=tmp_path, epochs=4)
    rates = [h.learning_rate for h in longer.history]
    assert rates[:2] == [0.5, 0.25] and rates[2] == pytest.approx(0.25)  # cos over 4, epoch 3


def test_resuming_a_finished_run_says_so(tmp_path):
    portamlp.train(checkpoint=tmp_path, epochs=2, **RUN)
    with pytest.warns(portamlp.PortamlpWarning, match="already done 2 epoch"):
        result = portamlp.train(resume=tmp_path, epochs=1)
    assert len(result.history) == 2


def test_signal_after_the_last_batch_stops_at_the_epoch_boundary(tmp_path):
    def signal_myself(record, network):
        if record.epoch == 1:
            signal.raise_signal(signal.SIGINT)  # after the epoch's last mini-batch

    with pytest.raises(portamlp.TrainingInterrupted, match="after epoch 1") as info:
        portamlp.train(checkpoint=tmp_path, epochs=3, callbacks=[signal_myself], **RUN)
    assert info.value.epochs_done == 1 and info.value.network is not None
    position = load_checkpoint(tmp_path).position
    assert (position.epoch, position.batch) == (2, 0)  # not one mini-batch into epoch 2


def test_every_flipped_bit_of_a_checkpoint_is_found(tmp_path):
    """A checkpoint's SHA-256 covers its run state and its tensors: a bit flipped anywhere, in
    the header or in the tensor data, is refused (before: 297 of 300 flips in the data and 50
    of 300 in the header loaded without a word)."""
    portamlp.train(checkpoint=tmp_path / "ck", epochs=1, momentum=0.5, early_stopping=True,
                   **{**RUN, "layers": (784, 8, 10)})
    original = checkpoint_path(tmp_path / "ck").read_bytes()
    header = 8 + int.from_bytes(original[:8], "little")
    rng = np.random.default_rng(0)
    target = tmp_path / "flipped" / "checkpoint.safetensors"
    target.parent.mkdir()
    refused = 0
    for lo, hi in ((8, header), (header, len(original))):  # the header, the tensor data
        for _ in range(100):
            data = bytearray(original)
            at = int(rng.integers(lo, hi))
            data[at] ^= 1 << int(rng.integers(0, 8))
            target.write_bytes(bytes(data))
            with pytest.raises(portamlp.ModelFormatError):
                load_checkpoint(target.parent)
            refused += 1
    assert refused == 200
    target.write_bytes(original)
    assert load_checkpoint(target.parent).position.epoch == 2  # the intact copy loads


def test_unknown_fields_of_a_checkpoint_are_refused(tmp_path):
    portamlp.train(checkpoint=tmp_path, epochs=1, **RUN)
    path = checkpoint_path(tmp_path)
    _rewrite_checkpoint(path, lambda t, d: (t, {**d, "positon": d["position"]}))
    with pytest.raises(portamlp.ModelFormatError, match=r"unknown checkpoint field\(s\) "
                                                        r"\['positon'\]"):
        load_checkpoint(tmp_path)
    portamlp.train(checkpoint=tmp_path / "b", epochs=1, **RUN)
    _rewrite_checkpoint(checkpoint_path(tmp_path / "b"),
                        lambda t, d: (t, {**d, "config": {**d["config"], "epocs": 3}}))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['epocs'\] in the checkpointed "
                                         r"run's configuration"):
        portamlp.train(resume=tmp_path / "b", epochs=2)


def test_resume_removes_the_temporary_file_a_killed_write_left(tmp_path):
    portamlp.train(checkpoint=tmp_path, epochs=1, **RUN)
    stale = tmp_path / ".checkpoint.safetensors.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / "notes.tmp"  # not a checkpoint's temporary file: kept
    other.write_text("mine")
    portamlp.train(resume=tmp_path, epochs=2)
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "notes.tmp"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_resume_folder_that_became_read_only_is_refused_before_training(tmp_path):
    portamlp.train(checkpoint=tmp_path / "ck", epochs=1, **RUN)
    (tmp_path / "ck").chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="cannot write in .*ck"):
            portamlp.train(resume=tmp_path / "ck", epochs=2)
    finally:
        (tmp_path / "ck").chmod(0o700)


def test_a_resume_folder_that_cannot_be_written_is_refused_before_training(tmp_path,
                                                                          monkeypatch):
    """As root a read-only folder is still writable: the check is the write itself, so a
    folder whose probe write fails is refused before the first epoch, naming the folder."""
    import tempfile as tempfile_module

    portamlp.train(checkpoint=tmp_path / "ck", epochs=1, **RUN)
    real = tempfile_module.mkstemp
    epochs = []

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == tmp_path / "ck":
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile_module, "mkstemp", read_only)
    with pytest.raises(PermissionError, match=r"cannot write in .*ck: Permission denied"):
        portamlp.train(resume=tmp_path / "ck", epochs=2,
                       callbacks=lambda r, n: epochs.append(r.epoch))
    assert epochs == []
