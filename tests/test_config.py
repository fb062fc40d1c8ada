"""Each option of train() is declared once (TrainConfig and RUN_OPTIONS); every copy is derived
from that declaration or checked against it here: the signature, the docstring, the command
line's flags, the keys of a --config file and the README's table."""

import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest

import portamlp
from portamlp.cli.main import build_parser
from portamlp.cli.training import flag_name, read_config
from portamlp.training.config import RUN_OPTIONS, TrainConfig, cli_options, options_table

ROOT = Path(__file__).resolve().parents[1]
DECLARED = [f.name for f in dataclasses.fields(TrainConfig)] + [o.name for o in RUN_OPTIONS]
DEFAULTS = {**{f.name: f.default for f in dataclasses.fields(TrainConfig)},
            **{o.name: o.default for o in RUN_OPTIONS}}


def test_signature_of_train_is_the_declaration():
    params = inspect.signature(portamlp.train).parameters
    assert list(params) == DECLARED
    for name, p in params.items():
        assert p.kind is inspect.Parameter.KEYWORD_ONLY
        assert p.default == DEFAULTS[name], name


def test_docstring_lists_every_option_with_its_help():
    doc = portamlp.train.__doc__
    for f in dataclasses.fields(TrainConfig):
        assert f"\n    {f.name} : " in doc
        assert f.metadata["help"].split()[0] in doc
    for o in RUN_OPTIONS:
        assert f"\n    {o.name} : " in doc


def test_train_subcommand_has_a_flag_for_every_command_line_option():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {s for a in train._actions for s in a.option_strings}
    for name, kind, _, _ in cli_options():
        assert flag_name(name) in flags, name
        if kind == "bool":
            assert "--no-" + flag_name(name)[2:] in flags
    python_only = {o.name for o in RUN_OPTIONS if o.kind is None}
    assert python_only == {"x", "y", "validation_data", "test_data", "sample_weight",
                           "callbacks", "optimizer_state"}
    declared_flags = {flag_name(n) for n in DECLARED}
    own = {"--config", "--save", "--force", "--quiet", "-q", "--json", "--debug", "--help", "-h"}
    extra = {f for f in flags if f.startswith("--") and not f.startswith("--no-")}
    assert extra - declared_flags - own == set()


def test_config_file_accepts_exactly_the_command_line_options(tmp_path):
    lines = []
    for name, kind, _default, _ in cli_options():
        value = {"bool": "true", "int": "1", "float": "0.5", "layers": '"784,10"',
                 "scale": '"standardize"', "path": '"somewhere"', "str": '"text"'}[kind]
        lines.append(f"{name} = {value}")
    path = tmp_path / "all.toml"
    path.write_text("\n".join(lines))
    assert set(read_config(path)) == {name for name, *_ in cli_options()}
    assert "download" in read_config(path)  # refused before the options were declared once
    path.write_text("learning_rat = 0.5\n")
    with pytest.raises(Exception, match=r"unknown option\(s\) \['learning_rat'\].*did you mean "
                                        r"'learning_rate'"):
        read_config(path)


def test_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert options_table() in readme, "regenerate: python -c 'import portamlp.config as c; " \
                                      "print(c.options_table())'"


def test_every_option_is_validated_by_its_declaration():
    for f in dataclasses.fields(TrainConfig):
        assert callable(f.metadata["check"])
        f.metadata["check"](f.name, f.default if f.name != "layers" else (784, 30, 10))


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
    cfg = TrainConfig(learning_rate=np.float64(0.1), momentum=np.float32(0.5),
                      batch_size=np.int64(7), layers=(4, np.int32(3)))
    assert type(cfg.learning_rate) is float and type(cfg.momentum) is float
    assert type(cfg.batch_size) is int and all(type(s) is int for s in cfg.layers)
