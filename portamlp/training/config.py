"""The options of a training run, declared once, and what a run reports.

Each option of :func:`portamlp.train` is declared here, once: its name, default, valid values and
one line of help. Everything else is derived from these declarations or tested against them:

* :class:`TrainConfig`, the frozen, validated settings of a run, *is* the declaration of the
  settings (a field per option, with its help and check in the field's metadata);
* :data:`RUN_OPTIONS` declares the other arguments of ``train`` (data, backend, checkpoints, ...);
* ``train()``'s keyword parameters are tested against both (``inspect.signature``), and its
  docstring's parameter list is generated from them;
* the ``portamlp train`` flags and the keys a ``--config`` TOML file accepts are generated from
  them (:func:`cli_options`);
* the README's options table is :func:`options_table`, and a test checks that it is there.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..checks import (
    DTYPES,
    check_bool,
    check_choice,
    check_dtype,
    check_float,
    check_int,
    check_layers,
)
from ..datasets.scaling import SCALES, check_scale
from ..fast import FAST_PATH_MODES, GRAPH_STEPS
from ..nn.activations import ACTIVATIONS
from ..nn.costs import COSTS
from ..nn.init import INITS
from .optimizers import OPTIMIZERS
from .schedules import SCHEDULES
from .stopping import MONITORS

if TYPE_CHECKING:
    from ..nn.network import Network

__all__ = ["TrainConfig", "EpochRecord", "TrainResult", "RunPosition", "RunOption",
           "RUN_OPTIONS", "DEFAULT_LAYERS", "DEFAULT_HIDDEN", "options_table", "options_doc",
           "cli_options"]

#: Layers used on a named data set when none are given (Nielsen's network).
DEFAULT_LAYERS = (784, 30, 10)
#: Hidden units used with your own data when no layers are given: (n_features, 30, n_classes).
DEFAULT_HIDDEN = 30


def option(default: Any, help: str, check: Callable[[str, Any], Any], *,
           kind: str, choices: tuple | None = None, default_text: str | None = None,
           cli: bool = True) -> Any:
    """A :class:`TrainConfig` field declaring one option.

    ``check(name, value)`` validates a value and returns it normalised; ``kind`` names the type
    for the command line and the docs ("int", "float", "str", "bool", "layers", "scale");
    ``default_text`` describes a ``None`` default; ``cli=False`` keeps it off the command line.
    """
    return field(default=default, metadata={
        "help": help, "check": check, "kind": kind, "choices": choices,
        "default_text": default_text, "cli": cli})


def _optional_layers(name, value):
    return None if value is None else check_layers(value, name)


def _rows(name, value):
    return check_int(name, value, minimum=0, optional=True)


def _positive_int(name, value):
    return check_int(name, value, minimum=1)


def _choice(choices):
    return lambda name, value: check_choice(name, value, choices)


def _dataset(name, value):
    if hasattr(value, "__fspath__"):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"dataset must be a name such as 'mnist' or a folder, got {value!r}")
    return value


def _seed(name, value):
    return check_int(name, value, minimum=0, optional=True)


def _threads(name, value):
    return check_int(name, value, minimum=1, optional=True)


def _schedule(name, value):
    return value if callable(value) else check_choice(name, value, SCHEDULES)


def _probability(name, value):
    return check_float(name, value, minimum=0.0, below=1.0)


def _max_norm(name, value):
    return check_float(name, value, above=0.0, optional=True)


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (validated on construction).

    ``None`` for a length means "all that is available": for a named data set, the training split
    minus the validation rows (50,000 for MNIST), and the whole test split (10,000).
    """

    layers: tuple[int, ...] | None = option(
        None, "layer sizes, inputs first, classes last", _optional_layers, kind="layers",
        default_text="784,30,10 (own data: n_features,30,n_classes)")
    train_length: int | None = option(
        None, "training rows used", _rows, kind="int",
        default_text="all but the validation rows (50,000)")
    validation_length: int | None = option(
        None, "validation rows, taken from the end of the training file", _rows, kind="int",
        default_text="10,000")
    test_length: int | None = option(None, "test rows used", _rows, kind="int",
                                     default_text="all (10,000)")
    batch_size: int = option(10, "mini-batch size", _positive_int, kind="int")
    epochs: int = option(5, "passes over the training data", _positive_int, kind="int")
    learning_rate: float = option(3.0, "step size η (try 0.05 with cross-entropy and momentum)",
                                  lambda n, v: check_float(n, v, above=0.0), kind="float")
    learning_rate_schedule: Any = option(
        "constant", "the rate of each epoch: cosine goes down towards 0 over the epochs, step "
        "multiplies it by decay_factor every decay_every epochs, plateau by decay_factor after "
        "plateau_patience epochs without improvement of the monitored figure; in Python also "
        "any callable epoch -> rate", _schedule, kind="str", choices=SCHEDULES)
    warmup_epochs: int = option(0, "epochs over which the rate ramps up linearly before the "
                                "schedule starts", lambda n, v: check_int(n, v, minimum=0),
                                kind="int")
    decay_factor: float = option(0.1, "the factor of the step and plateau schedules",
                                 lambda n, v: check_float(n, v, above=0.0, below=1.0),
                                 kind="float")
    decay_every: int = option(10, "epochs between the step schedule's decays", _positive_int,
                              kind="int")
    plateau_patience: int = option(3, "epochs without improvement before the plateau schedule "
                                   "decays", _positive_int, kind="int")
    activation: str = option("sigmoid", "hidden-layer activation", _choice(tuple(ACTIVATIONS)),
                             kind="str", choices=tuple(ACTIVATIONS))
    cost: str = option("quadratic", "quadratic is Nielsen's and the original program's; "
                       "cross_entropy has a softmax output", _choice(tuple(COSTS)), kind="str",
                       choices=tuple(COSTS))
    optimizer: str = option("sgd", "how gradients update the weights", _choice(OPTIMIZERS),
                            kind="str",
                            choices=OPTIMIZERS)
    momentum: float = option(0.0, "SGD momentum μ in [0, 1)",
                             lambda n, v: check_float(n, v, minimum=0.0, below=1.0), kind="float")
    nesterov: bool = option(False, "Nesterov momentum (needs momentum > 0)", check_bool,
                            kind="bool")
    weight_decay: float = option(0.0, "L2 penalty λ on the weights (not the biases)",
                                 lambda n, v: check_float(n, v, minimum=0.0), kind="float")
    dropout: float = option(0.0, "probability of dropping each hidden unit in training "
                            "(inverted dropout; prediction uses the full network)",
                            _probability, kind="float")
    input_dropout: float = option(0.0, "probability of dropping each input unit in training",
                                  _probability, kind="float")
    max_norm: float | None = option(None, "after every step, scale each unit's incoming weight "
                                    "vector down to this norm if longer", _max_norm,
                                    kind="float", default_text="none")
    early_stopping: bool = option(False, "stop when the monitored figure has not improved for "
                                  "patience epochs, and restore the best weights", check_bool,
                                  kind="bool")
    monitor: str = option("validation_accuracy", "the figure early stopping and the plateau "
                          "schedule watch", _choice(MONITORS), kind="str", choices=MONITORS)
    patience: int = option(10, "epochs without improvement before early stopping stops",
                           _positive_int, kind="int")
    min_delta: float = option(0.0, "the least change of the monitored figure that counts as an "
                              "improvement", lambda n, v: check_float(n, v, minimum=0.0),
                              kind="float")
    restore_best: bool = option(True, "with early stopping, end with the best epoch's weights",
                                check_bool, kind="bool")
    init: str = option("auto", "initial weights; auto is normal for sigmoid, he for (leaky) "
                       "relu, glorot for tanh", _choice(INITS), kind="str", choices=INITS)
    dtype: str = option("float32", "floating dtype of parameters and data",
                        lambda n, v: check_dtype(v, n), kind="str", choices=DTYPES)
    dataset: str = option("mnist", "mnist (embedded), fashion-mnist, kmnist or a folder of "
                          "MNIST-format files (not with your own x, y)", _dataset, kind="str")
    scale: Any = option(255, "pixels of a named data set ÷255, ÷256 (the original program) or "
                        "standardized; stored with the model", lambda n, v: check_scale(v),
                        kind="scale", choices=SCALES)
    shuffle: bool = option(True, "shuffle the training rows every epoch", check_bool,
                           kind="bool")
    seed: int | None = option(None, "seeds initial weights and order: the same run on every "
                              "backend", _seed, kind="int",
                              default_text="fresh entropy, recorded in the result")
    threads: int | None = option(None, "BLAS threads on the CPU", _threads, kind="int",
                                 default_text="1 for small products, else the idle cores")
    fast_path: str = option("auto", f"CuPy only: fused CUDA kernels, {GRAPH_STEPS} steps per "
                            "CUDA graph; auto uses them where they apply, on insists, off keeps "
                            "the portable Array-API step",
                            _choice(FAST_PATH_MODES), kind="str", choices=FAST_PATH_MODES)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = f.metadata["check"](f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")
        if self.optimizer == "adam" and (self.momentum or self.nesterov):
            raise ValueError("momentum and nesterov apply to optimizer='sgd'; Adam keeps its own "
                             "moment estimates")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (JSON-ready); a callable schedule is named ``"callable:<name>"``."""
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers) if self.layers else None
        if callable(self.learning_rate_schedule):
            name = getattr(self.learning_rate_schedule, "__qualname__", "function")
            d["learning_rate_schedule"] = f"callable:{name}"
        return d


@dataclass(frozen=True)
class RunOption:
    """An argument of :func:`portamlp.train` that is not a setting of the run itself."""

    name: str
    default: Any
    help: str
    #: "int", "float", "str", "bool", "path" for the command line; None: Python only.
    kind: str | None = None
    default_text: str | None = None


#: The other arguments of ``train``, in signature order.
RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("x", None, "your own training inputs (n, n_features) instead of a data set"),
    RunOption("y", None, "your own training labels (n,): class indices 0..k-1"),
    RunOption("validation_data", None, "(x, y) to validate on after each epoch, with x"),
    RunOption("test_data", None, "(x, y) to test on at the end, with x"),
    RunOption("sample_weight", None, "a weight per training row: weighs its cost and gradient"),
    RunOption("network", None, "continue training this Network (its layers, activation, cost)",
              kind="path"),
    RunOption("optimizer_state", None, "with network=: a previous result's optimizer_state, to "
              "continue its momentum or Adam moments"),
    RunOption("backend", None, "numpy, cupy, torch, array_api_strict or auto", kind="str",
              default_text="x's library, else $PORTAMLP_BACKEND, else auto"),
    RunOption("device", None, "device of the backend: cpu, cuda, cuda:1, 1, ...", kind="str",
              default_text="the backend's default"),
    RunOption("root", None, "folder searched first for named data sets", kind="path"),
    RunOption("download", False, "download fashion-mnist or kmnist if not found locally",
              kind="bool"),
    RunOption("progress", None, "a progress bar on stderr", kind="bool",
              default_text="only on a terminal"),
    RunOption("callbacks", (), "callback(record, network) after each epoch; True stops"),
    RunOption("checkpoint", None, "directory: a checkpoint every epoch; Ctrl-C saves one",
              kind="path"),
    RunOption("resume", None, "directory: continue its checkpointed run exactly", kind="path"),
    RunOption("distributed", None, "mpi: data-parallel training over the ranks of mpiexec -n N "
              "(one global mini-batch; rank 0 writes)", kind="str",
              default_text="none: one process"),
)


def _default_text(default: Any, default_text: str | None) -> str:
    return default_text if default_text is not None else repr(default)


def options_table() -> str:
    """The README's table of ``train`` options (Markdown), generated from the declarations."""
    def code(v: Any) -> str:
        return f"`{v!r}`"

    rows = ["| option | default | values | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        default = meta["default_text"] or code(f.default)
        values = ", ".join(code(c) for c in meta["choices"]) if meta["choices"] else \
            {"layers": "ints"}.get(meta["kind"], meta["kind"])
        rows.append(f"| `{f.name}` | {default} | {values} | {meta['help']} |")
    for o in RUN_OPTIONS:
        default = o.default_text or code(o.default)
        rows.append(f"| `{o.name}` | {default} | {o.kind or 'Python only'} | {o.help} |")
    return "\n".join(rows)


def options_doc(indent: str = "    ") -> str:
    """The numpydoc parameter list of ``train``, generated from the declarations."""
    lines = []

    def entry(name: str, kind: str, text: str) -> None:
        lines.append(f"{name} : {kind}")
        lines.extend(textwrap.wrap(text, width=92, initial_indent=indent,
                                   subsequent_indent=indent))

    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        kind = ("{" + ", ".join(repr(c) for c in meta["choices"]) + "}") if meta["choices"] \
            else {"layers": "sequence of int or str"}.get(meta["kind"], meta["kind"])
        entry(f.name, kind, f"{meta['help']}; default: "
                            f"{_default_text(f.default, meta['default_text'])}.")
    for o in RUN_OPTIONS:
        entry(o.name, "optional", f"{o.help}; default: {_default_text(o.default, o.default_text)}.")
    return textwrap.indent("\n".join(lines), indent)


def cli_options() -> list[tuple[str, str, Any, str]]:
    """``(name, kind, default, help)`` of every option that is a ``portamlp train`` flag and a
    key of a ``--config`` TOML file; the help ends with the valid values and the default."""
    out = []
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if meta["cli"]:
            text = meta["help"]
            if meta["choices"]:
                text += " (" + ", ".join(str(c) for c in meta["choices"]) + ")"
            out.append((f.name, meta["kind"], f.default,
                        f"{text}; default: {meta['default_text'] or _plain(f.default)}"))
    for o in RUN_OPTIONS:
        if o.kind is not None:
            out.append((o.name, o.kind, o.default,
                        f"{o.help}; default: {o.default_text or _plain(o.default)}"))
    return out


def _plain(value: Any) -> str:
    return "none" if value is None else str(value)


@dataclass
class EpochRecord:
    """What one epoch measured."""

    epoch: int
    seconds: float
    train_loss: float
    validation_accuracy: float | None = None
    #: Mean cost on the validation set.
    validation_loss: float | None = None
    #: Classes the network never predicted on the validation set.
    never_predicted: list[int] = field(default_factory=list)
    #: The learning rate used in this epoch.
    learning_rate: float | None = None


@dataclass
class RunPosition:
    """Where a run stands: what a checkpoint needs to continue it exactly.

    ``epoch`` is the epoch to run next (1-based) and ``batch`` the mini-batch within it to start
    from (0 at an epoch boundary); ``loss_sum`` and ``seconds`` are the partial sums of an
    interrupted epoch; ``rng_state`` is the host generator's state at the start of ``epoch``
    (resuming replays that epoch's permutation).
    """

    epoch: int = 1
    batch: int = 0
    loss_sum: float = 0.0
    seconds: float = 0.0
    history: list[EpochRecord] = field(default_factory=list)
    rng_state: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON-ready) data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPosition:
        """The inverse of :meth:`to_dict`; raises KeyError/TypeError/ValueError if malformed."""
        history = [EpochRecord(**h) for h in data["history"]]
        position = cls(epoch=check_int("epoch", data["epoch"], minimum=1),
                       batch=check_int("batch", data["batch"], minimum=0),
                       loss_sum=check_float("loss_sum", data["loss_sum"]),
                       seconds=check_float("seconds", data["seconds"], minimum=0.0),
                       history=history, rng_state=data["rng_state"])
        if not isinstance(position.rng_state, dict):
            raise TypeError(f"rng_state must be an object, got {position.rng_state!r}")
        return position


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    network: Network
    history: list[EpochRecord]
    test_accuracy: float | None
    config: TrainConfig
    #: True when a callback or early stopping stopped training before the last epoch.
    stopped_early: bool = False
    #: With early stopping: the epoch whose weights the network holds (when restore_best).
    best_epoch: int | None = None
    #: The optimizer's state at the end (``{"arrays": {...}, "scalars": {...}}``, arrays on the
    #: device): pass it as ``train(network=..., optimizer_state=...)`` to continue exactly.
    optimizer_state: dict[str, Any] | None = None
    #: Whether the fast CuPy step trained (see the ``fast_path`` option), else the portable one.
    fast_step: bool = False
