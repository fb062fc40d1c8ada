"""Dropout, max-norm, early stopping and learning-rate schedules (issue 13)."""

import math
from pathlib import Path

import numpy as np
import pytest

import portamlp
from portamlp.backends import to_numpy
from portamlp.training.dropout import Dropout, counter_hash, step_key

ROOT = Path(__file__).resolve().parents[1]
RUN = dict(layers=(784, 24, 10), train_length=1000, validation_length=300, test_length=300,
           batch_size=50, seed=3, activation="relu", cost="cross_entropy", learning_rate=0.1,
           momentum=0.9)


# ----------------------------------------------------------------------------------- dropout
def _backends():
    names = [("numpy", None), ("array_api_strict", "device1")]
    if portamlp.available_backends()["torch"]:
        names.append(("torch", None))
    return [portamlp.get_backend(n, d) for n, d in names]


def test_one_seed_gives_the_same_masks_on_every_backend():
    masks = []
    for be in _backends():
        drop = Dropout(be.xp, be.device, (784, 100, 50, 10), 0.5, 0.2, seed=2**40 + 17,
                       dtype=be.xp.float64)
        masks.append([to_numpy(drop.mask(step, layer, 32)) for step in (0, 1, 999)
                      for layer in (0, 1, 2)])
    for other in masks[1:]:
        for a, b in zip(masks[0], other):
            np.testing.assert_array_equal(a, b)
    # inverted dropout: kept units are scaled by 1/keep, the rate is the one asked for
    hidden, inputs = masks[0][1], masks[0][0]
    assert set(np.unique(hidden)) == {0.0, 2.0} and set(np.unique(inputs)) == {0.0, 1.25}
    assert abs((hidden == 0).mean() - 0.5) < 0.02 and abs((inputs == 0).mean() - 0.2) < 0.02
    assert not np.array_equal(masks[0][1], masks[0][4])  # another step, another mask


def test_the_counter_hash_is_well_spread():
    xp = portamlp.get_backend("numpy").xp
    h = counter_hash(xp, np.arange(200_000, dtype=np.int64), step_key(0, 5, 1))
    assert h.min() >= 0 and h.max() < 2**32
    bits = ((h[:, None] >> np.arange(32)) & 1).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 0.01)  # every bit is a fair coin
    counts = np.bincount(h >> 24, minlength=256)  # the top byte is uniform
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
    assert chi2 < 350  # 255 degrees of freedom
    assert abs(np.corrcoef(h[:-1], h[1:])[0, 1]) < 0.01  # neighbours are independent


def test_a_shard_of_a_batch_gets_the_rows_of_the_whole_batch():
    be = portamlp.get_backend("numpy")
    drop = Dropout(be.xp, be.device, (6, 5, 3), 0.5, 0.3, seed=1, dtype=np.float32)
    whole = drop.mask(4, 1, 10)
    np.testing.assert_array_equal(drop.mask(4, 1, 4, row_offset=6), whole[6:])


def test_dropout_trains_identically_on_every_backend_after_20_steps():
    x, y = portamlp.datasets.load_mnist("train", length=200, backend="numpy")
    results = []
    for be in _backends():
        r = portamlp.train(x=be.asarray(x, "float64"), y=be.asarray(y), layers=(784, 32, 10),
                           dtype="float64", batch_size=10, epochs=1, seed=5, backend=be,
                           dropout=0.5, input_dropout=0.2, max_norm=2.0, momentum=0.9,
                           activation="relu", cost="cross_entropy", learning_rate=0.05)
        results.append(r.network.host_parameters())
    for other in results[1:]:
        for a, b in zip(sum(results[0], []), sum(other, [])):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


def test_dropout_is_for_training_only_and_changes_training():
    plain = portamlp.train(**RUN, epochs=1)
    dropped = portamlp.train(**RUN, epochs=1, dropout=0.5)
    assert not np.array_equal(to_numpy(plain.network.weights[0]),
                              to_numpy(dropped.network.weights[0]))
    net = dropped.network
    x, _ = portamlp.datasets.load_mnist("test", length=50, backend=net.backend)
    np.testing.assert_array_equal(to_numpy(net.predict_proba(x)), to_numpy(net.predict_proba(x)))


def test_max_norm_bounds_every_units_incoming_weights():
    result = portamlp.train(**{**RUN, "learning_rate": 0.5}, epochs=1, max_norm=0.8,
                            init="normal")
    for w in result.network.weights:
        norms = np.sqrt((to_numpy(w) ** 2).sum(axis=1))
        assert norms.max() <= 0.8 * (1 + 1e-5)


# ---------------------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_epoch():
    seen = {}

    def keep(record, network):
        seen[record.epoch] = [to_numpy(p).copy() for p in network.parameters()]

    result = portamlp.train(**{**RUN, "learning_rate": 2.0}, epochs=12, early_stopping=True,
                            patience=2, callbacks=[keep])
    accuracies = [h.validation_accuracy for h in result.history]
    best = result.best_epoch
    assert accuracies[best - 1] == max(accuracies)
    if result.stopped_early:
        assert len(result.history) == best + 2  # patience 2
    for a, b in zip(result.network.parameters(), seen[best]):
        np.testing.assert_array_equal(to_numpy(a), b)


@pytest.mark.parametrize("monitor", ["validation_cost", "train_cost",
                                     "validation_loss", "train_loss"])  # the earlier names
def test_early_stopping_on_costs(monitor):
    result = portamlp.train(**RUN, epochs=6, early_stopping=True, patience=1, monitor=monitor,
                            min_delta=1e9)  # nothing counts as an improvement: stop at once
    assert result.stopped_early and len(result.history) == 2 and result.best_epoch == 1
    assert result.config.monitor == monitor.replace("_loss", "_cost")
    assert all(h.validation_cost > 0 and h.validation_loss == h.validation_cost
               for h in result.history)


def test_early_stopping_without_restoring_keeps_the_last_weights():
    result = portamlp.train(**RUN, epochs=3, early_stopping=True, patience=1, min_delta=1e9,
                            restore_best=False)
    assert result.best_epoch == 1 and len(result.history) == 2


def test_monitoring_validation_needs_validation_data():
    with pytest.raises(ValueError, match="no validation data.*monitor='train_cost'"):
        portamlp.train(**{**RUN, "validation_length": 0}, epochs=1, early_stopping=True)
    with pytest.raises(ValueError, match="plateau schedule watches"):
        portamlp.train(**{**RUN, "validation_length": 0}, epochs=1,
                       learning_rate_schedule="plateau")


# -------------------------------------------------------------------------------- schedules
def _rates(**options):
    result = portamlp.train(**{**RUN, "train_length": 200, **options})
    return [h.learning_rate for h in result.history]


def test_step_schedule():
    assert _rates(epochs=5, learning_rate_schedule="step", decay_every=2, decay_factor=0.5) == \
        pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_warmup_then_cosine():
    rates = _rates(epochs=6, learning_rate_schedule="cosine", warmup_epochs=2)
    expected = [0.05, 0.1] + [0.05 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert rates == pytest.approx(expected)


def test_plateau_schedule_decays_after_patience():
    rates = _rates(epochs=5, learning_rate_schedule="plateau", plateau_patience=1,
                   decay_factor=0.5, monitor="train_loss", min_delta=1e9)
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.0125])


def test_a_callable_schedule():
    assert _rates(epochs=3, learning_rate_schedule=lambda e: 0.1 / e) == \
        pytest.approx([0.1, 0.05, 0.1 / 3])
    with pytest.raises(ValueError, match="returned nan for epoch 2; it must return a finite "
                                         "rate > 0"):
        _rates(epochs=3, learning_rate_schedule=lambda e: float("nan") if e == 2 else 0.1)


def test_schedules_and_early_stopping_survive_checkpoint_and_resume(tmp_path):
    options = dict(RUN, epochs=6, learning_rate_schedule="plateau", plateau_patience=1,
                   decay_factor=0.5, early_stopping=True, patience=3, monitor="validation_loss",
                   dropout=0.3, max_norm=3.0)
    straight = portamlp.train(**options)
    portamlp.train(checkpoint=tmp_path, callbacks=[lambda r, n: r.epoch == 3], **options)
    resumed = portamlp.train(resume=tmp_path)
    assert [h.learning_rate for h in resumed.history] == \
        [h.learning_rate for h in straight.history]
    assert resumed.best_epoch == straight.best_epoch
    for a, b in zip(straight.network.parameters(), resumed.network.parameters()):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_a_callable_schedule_must_be_passed_again_to_resume(tmp_path):
    def schedule(epoch):
        return 0.1 / epoch

    portamlp.train(**RUN, epochs=1, learning_rate_schedule=schedule, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="callable learning_rate_schedule.*pass it again"):
        portamlp.train(resume=tmp_path, epochs=2)
    assert len(portamlp.train(resume=tmp_path, epochs=2,
                              learning_rate_schedule=schedule).history) == 2


# ------------------------------------------------------------------------------ bad values
@pytest.mark.parametrize("option, match", [
    (dict(dropout=1.0), r"dropout=1.0 must be >= 0.0 and < 1.0"),
    (dict(input_dropout=-0.1), r"input_dropout=-0.1 must be >= 0.0 and < 1.0"),
    (dict(max_norm=-1.0), r"max_norm=-1.0 must be > 0.0"),
    (dict(patience=0), r"patience=0 must be >= 1"),
    (dict(plateau_patience=0), r"plateau_patience=0 must be >= 1"),
    (dict(decay_factor=1.5), r"decay_factor=1.5 must be > 0.0 and < 1.0"),
    (dict(warmup_epochs=-1), r"warmup_epochs=-1 must be >= 0"),
    (dict(monitor="val_acc"), r"unknown monitor 'val_acc'"),
    (dict(learning_rate_schedule="Step"), r"did you mean 'step'"),
])
def test_bad_values_name_the_valid_range(option, match):
    with pytest.raises(ValueError, match=match):
        portamlp.train(**{**RUN, **option}, epochs=1)


# --------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", ["mnist-dropout.toml", "fashion-mnist.toml",
                                  "mnist-distortions.toml"])
def test_the_recipes_are_valid_config_files(name, tmp_path):
    from portamlp.cli.training import read_config
    from portamlp.training.config import TrainConfig

    options = read_config(ROOT / "examples" / name)
    settings = {k: v for k, v in options.items() if k in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**settings)
    assert cfg.epochs >= 10 and (cfg.dropout > 0 or cfg.early_stopping
                                 or cfg.distortions.active)


def test_optimizer_state_continues_momentum_exactly():
    two = portamlp.train(**RUN, epochs=2, shuffle=False)
    one = portamlp.train(**RUN, epochs=1, shuffle=False)
    more = portamlp.train(**{**RUN, "seed": 3}, epochs=1, shuffle=False, network=one.network,
                          optimizer_state=one.optimizer_state)
    for a, b in zip(two.network.parameters(), more.network.parameters()):
        np.testing.assert_allclose(to_numpy(b), to_numpy(a), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="pass network= too"):
        portamlp.train(**RUN, epochs=1, optimizer_state=one.optimizer_state)
    adam = portamlp.train(**{k: v for k, v in RUN.items() if k != "momentum"}, optimizer="adam",
                          epochs=1)
    with pytest.raises(ValueError, match="another network or optimizer"):
        portamlp.train(**RUN, epochs=1, network=one.network, optimizer_state=adam.optimizer_state)
