"""Each option of train() is declared once (TrainConfig, the optimizers' hyper-parameters and
RUN_OPTIONS); every copy is derived from that declaration or checked against it here: the
signature, the docstring, the command line's flags, the keys of a --config file and the
documentation's table (generated when the site is built; tests/test_docs.py checks it)."""

import dataclasses
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import portamlp
from portamlp.cli.main import build_parser
from portamlp.cli.training import flag_name, read_config
from portamlp.training.config import (
    RUN_OPTIONS,
    TrainConfig,
    cli_options,
    declared_options,
)
from portamlp.training.optimizers import OPTIMIZERS

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FIELDS = [f for f in dataclasses.fields(TrainConfig) if f.name != "optimizer_options"]
DECLARED = [f.name for f in CONFIG_FIELDS] + [o.name for o in RUN_OPTIONS]
DEFAULTS = {**{f.name: f.default for f in CONFIG_FIELDS},
            **{o.name: o.default for o in RUN_OPTIONS}}
HYPER = {hp.name: hp for opt in OPTIMIZERS.values() for hp in opt.hyper_parameters}


def test_signature_of_train_is_the_declaration():
    params = inspect.signature(portamlp.train).parameters
    *named, extra = params
    assert named == DECLARED
    for name in named:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == DEFAULTS[name], name
    # the optimizers' hyper-parameters arrive by name, through **optimizer_options
    assert extra == "optimizer_options" and params[extra].kind is inspect.Parameter.VAR_KEYWORD


def _words(text: str) -> str:
    return " ".join(text.split())


def test_docstring_lists_every_option_with_its_whole_help_and_default():
    doc = _words(portamlp.train.__doc__)
    for d in declared_options():
        entry = re.search(rf" {d.name} : .*?; default: ", doc)
        assert entry, d.name
        assert _words(d.help) in doc, d.name
    for opt in OPTIMIZERS.values():
        for hp in opt.hyper_parameters:
            assert _words(f"{opt.name}: {hp.help}") in doc


def test_train_subcommand_has_a_flag_for_every_command_line_option():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {s for a in train._actions for s in a.option_strings}
    for d in cli_options():
        assert flag_name(d.name) in flags, d.name
        if d.kind == "bool":
            assert "--no-" + flag_name(d.name)[2:] in flags
    python_only = {o.name for o in RUN_OPTIONS if o.kind is None}
    assert python_only == {"x", "y", "validation_data", "test_data", "sample_weight",
                           "callbacks", "optimizer_state"}
    declared_flags = {flag_name(n) for n in [*DECLARED, *HYPER]}
    own = {"--config", "--save", "--force", "--quiet", "-q", "--json", "--debug", "--help", "-h"}
    extra = {f for f in flags if f.startswith("--") and not f.startswith("--no-")}
    assert extra - declared_flags - own == set()
    assert {"--momentum", "--nesterov", "--beta1", "--beta2", "--epsilon"} <= flags


def test_config_file_accepts_exactly_the_command_line_options(tmp_path):
    lines = []
    for d in cli_options():
        value = {"bool": "true", "int": "1", "float": "0.5", "layers": '"784,10"',
                 "scale": '"standardize"', "path": '"somewhere"', "str": '"text"'}[d.kind]
        lines.append(f"{d.name} = {value}")
    path = tmp_path / "all.toml"
    path.write_text("\n".join(lines))
    assert set(read_config(path)) == {d.name for d in cli_options()}
    assert "download" in read_config(path)  # refused before the options were declared once
    path.write_text("learning_rat = 0.5\n")
    with pytest.raises(Exception, match=r"unknown option\(s\) \['learning_rat'\].*did you mean "
                                        r"'learning_rate'"):
        read_config(path)


#: A value each kind of option must refuse.
BAD = {"int": 2.5, "float": "fast", "bool": "yes", "str": "no such value", "layers": (784,),
       "scale": 100, "dict": [1, 2]}


def test_every_option_is_validated_by_its_declaration():
    for f in dataclasses.fields(TrainConfig):
        check, kind = f.metadata["check"], f.metadata["kind"]
        assert callable(check)
        default = f.default if f.name != "layers" else (784, 30, 10)
        if f.name == "optimizer_options":
            default = {}
        check(f.name, default)  # the default passes ...
        if f.name == "dataset":  # ... a bad value does not (a dataset is any name or folder)
            bad = 3
        elif f.name == "learning_rate_schedule":
            bad = "cosin"
        else:
            bad = BAD[kind]
        with pytest.raises((TypeError, ValueError), match=re.escape(f.name)):
            check(f.name, bad)
    for name, hp in HYPER.items():
        assert hp.check(name, hp.default) == hp.default
        with pytest.raises((TypeError, ValueError), match=name):
            hp.check(name, BAD[hp.kind])


def test_out_of_range_values_are_refused_with_the_range():
    for option, value, match in [("batch_size", 0, "batch_size=0 must be >= 1"),
                                 ("learning_rate", -1.0, "learning_rate=-1.0 must be > 0"),
                                 ("dropout", 1.0, "dropout=1.0 must be >= 0.0 and < 1.0"),
                                 ("momentum", 1.0, "momentum=1.0 must be >= 0.0 and < 1.0"),
                                 ("beta2", 1.5, "beta2=1.5 must be >= 0.0 and < 1.0")]:
        with pytest.raises(ValueError, match=re.escape(match)):
            TrainConfig(**TrainConfig.split({option: value, "optimizer": "adam" if option ==
                                             "beta2" else "sgd"}))


@pytest.mark.parametrize("option, value, hint", [
    ("activation", "ReLU", "did you mean 'relu'"),
    ("cost", "crossentropy", "did you mean 'cross_entropy'"),
    ("optimizer", "Adam", "did you mean 'adam'"),
    ("learning_rate_schedule", "cosin", "did you mean 'cosine'"),
    ("init", "He", "did you mean 'he'"),
    ("dtype", "Float64", "did you mean 'float64'"),
])
def test_names_are_exact_and_near_misses_get_a_suggestion(option, value, hint):
    with pytest.raises(ValueError, match=hint):
        portamlp.train(**{option: value}, epochs=1)


def test_network_initialize_follows_the_same_rule_as_train():
    with pytest.raises(ValueError, match="did you mean 'relu'"):
        portamlp.Network.initialize((4, 3), activation="ReLU")
    with pytest.raises(ValueError, match="did you mean 'cross_entropy'"):
        portamlp.Network.initialize((4, 3), cost="Cross_Entropy")


def test_numpy_scalar_options_become_python_numbers():
    cfg = TrainConfig(learning_rate=np.float64(0.1), optimizer_options={"momentum":
                                                                        np.float32(0.5)},
                      batch_size=np.int64(7), layers=(4, np.int32(3)))
    assert type(cfg.learning_rate) is float and type(cfg.momentum) is float
    assert type(cfg.batch_size) is int and all(type(s) is int for s in cfg.layers)


def test_hyper_parameters_belong_to_their_optimizer():
    cfg = TrainConfig(optimizer="adam", optimizer_options={"beta2": 0.99})
    assert cfg.optimizer_options == {"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8}
    assert cfg.beta2 == 0.99 and cfg.to_dict()["beta2"] == 0.99 and "momentum" not in cfg.to_dict()
    with pytest.raises(ValueError, match="momentum=0.9 applies to optimizer='sgd', not "
                                         "optimizer='adam'"):
        portamlp.train(optimizer="adam", momentum=0.9, epochs=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'.*did you mean "
                                        "'epochs'"):
        portamlp.train(epoch=3)
    # other libraries' names for an option get it as their suggestion
    with pytest.raises(TypeError, match="unexpected keyword argument 'lr' \\(did you mean "
                                        "'learning_rate'\\?\\)"):
        portamlp.train(lr=0.1)
    with pytest.raises(TypeError, match="'max_iter' \\(did you mean 'epochs'\\?\\)"):
        portamlp.train(max_iter=3)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        portamlp.train(nesterov=True, epochs=1)
    # an earlier run record lists every optimizer's hyper-parameters: the defaults of the others
    # are dropped, a changed one is refused
    old = TrainConfig(optimizer="adam").to_dict() | {"momentum": 0.0, "nesterov": False}
    assert TrainConfig(**TrainConfig.split(old)).optimizer_options["beta1"] == 0.9
    with pytest.raises(ValueError, match="momentum=0.5 applies to optimizer='sgd'"):
        TrainConfig(**TrainConfig.split(old | {"momentum": 0.5}))


def test_another_optimizers_hyper_parameter_is_refused_even_at_its_default():
    for options, name in [(dict(optimizer="adam", momentum=0.0), "momentum"),
                          (dict(optimizer="adam", nesterov=False), "nesterov"),
                          (dict(beta1=0.9), "beta1")]:
        with pytest.raises(ValueError, match=f"{name}=.* applies to optimizer="):
            portamlp.train(epochs=1, **options)
