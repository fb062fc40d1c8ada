"""The options of a training run, declared once, and what a run reports.

Each option of :func:`portamlp.train` is declared once: its name, default, valid values and one
line of help. Everything else is derived from the declarations or tested against them:

* :class:`TrainConfig`, the frozen, validated configuration of a run, *is* the declaration of
  the run's options (a field per option, with its help and check in the field's metadata);
* each optimizer declares its own hyper-parameters
  (:attr:`portamlp.training.optimizers.Optimizer.hyper_parameters`); a run's values are
  :attr:`TrainConfig.optimizer_options`;
* :data:`RUN_OPTIONS` declares the other arguments of ``train`` (data, backend, checkpoints, ...);
* ``train()``'s keyword parameters are tested against them (``inspect.signature``), and its
  docstring's parameter list is generated from them;
* the ``portamlp train`` flags and the keys a ``--config`` TOML file accepts are generated from
  them (:func:`cli_options`), and so is the documentation's options table (:func:`options_table`).

The valid values of ``activation``, ``cost``, ``init`` and ``optimizer`` are read from their
registries when they are used, so a registered entry is valid everywhere.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable, Iterator
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
from ..files.run_records import EpochRecord
from ..nn.activations import ACTIVATIONS
from ..nn.costs import COSTS
from ..nn.init import init_names
from .distortions import DistortionSpec
from .optimizers import OPTIMIZERS, hyper_parameters
from .schedules import SCHEDULES
from .stopping import MONITORS, check_monitor

if TYPE_CHECKING:
    from ..nn.network import Network

__all__ = ["TrainConfig", "TrainResult", "RunOption", "RUN_OPTIONS", "Declared",
           "DEFAULT_LAYERS", "DEFAULT_HIDDEN", "declared_options", "options_table",
           "options_doc", "cli_options", "EpochRecord"]

#: Layers used on a named data set when none are given (Nielsen's network).
DEFAULT_LAYERS = (784, 30, 10)
#: Hidden units used with your own data when no layers are given: (n_features, 30, n_classes).
DEFAULT_HIDDEN = 30


def option(default: Any, help: str | Callable[[], str], check: Callable[[str, Any], Any], *,
           kind: str, choices: Callable[[], Any] | None = None,
           default_text: str | None = None, cli: bool = True) -> Any:
    """A :class:`TrainConfig` field declaring one option.

    ``help`` is one line (or a function giving it, when it reads a registry);
    ``check(name, value)`` validates a value and returns it normalised; ``kind`` names the type
    for the command line and the docs ("int", "float", "str", "bool", "layers", "scale");
    ``choices()`` gives the valid values when they form a list (read when used, so that
    registered entries count); ``default_text`` describes a ``None`` default; ``cli=False``
    keeps it off the command line.
    """
    return field(default=default, metadata={
        "help": help, "check": check, "kind": kind, "choices": choices,
        "default_text": default_text, "cli": cli})


def _optional_layers(name, value):
    return None if value is None else check_layers(value, name, min_outputs=1)


def _rows(name, value):
    return check_int(name, value, minimum=0, optional=True)


def _positive_int(name, value):
    return check_int(name, value, minimum=1)


def _one_of(choices: Callable[[], Any]) -> Callable[[str, Any], str]:
    return lambda name, value: check_choice(name, value, choices())


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


def _nonnegative(name, value):
    return check_float(name, value, minimum=0.0)


def _fraction(name, value):
    return check_float(name, value, minimum=0.0, below=1.0)


def _max_norm(name, value):
    return check_float(name, value, above=0.0, optional=True)


def _mapping(name, value):
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict of the optimizer's hyper-parameters, got "
                        f"{value!r}")
    return dict(value)


@dataclass(frozen=True)
class TrainConfig:
    """The configuration of one training run (validated on construction).

    ``None`` for a length means "all that is available": for a named data set, the training split
    minus the validation rows (50,000 for MNIST), and the whole test split (10,000). The
    optimizer's own hyper-parameters are in :attr:`optimizer_options` (filled with their
    defaults) and read as attributes too (``config.momentum``).
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
    validation_split: float = option(
        0.0, "your own x without validation_data: validate on this fraction of its rows (the "
        "last ones, before any shuffling, as Keras does)",
        lambda n, v: check_float(n, v, minimum=0.0, below=1.0), kind="float", cli=False)
    batch_size: int = option(10, "mini-batch size", _positive_int, kind="int")
    epochs: int = option(5, "passes over the training data", _positive_int, kind="int")
    learning_rate: float = option(3.0, "step size η (try 0.05 with cross-entropy and momentum)",
                                  lambda n, v: check_float(n, v, above=0.0), kind="float")
    learning_rate_schedule: Any = option(
        "constant", "the rate of each epoch: cosine goes down towards 0 over the epochs, step "
        "multiplies it by decay_factor every decay_every epochs, plateau by decay_factor after "
        "plateau_patience epochs without improvement of the monitored value; in Python also "
        "any callable epoch -> rate", _schedule, kind="str", choices=lambda: SCHEDULES)
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
    activation: str = option("sigmoid", "hidden-layer activation",
                             _one_of(lambda: ACTIVATIONS), kind="str",
                             choices=lambda: tuple(ACTIVATIONS))
    cost: str = option("quadratic", "quadratic is Nielsen's and the original program's; "
                       "cross_entropy has a softmax output; squared_error fits values "
                       "(regression, an identity output); binary_cross_entropy fits several "
                       "0/1 labels per sample (a logistic output each); poisson fits counts "
                       "(an exponential output)",
                       _one_of(lambda: COSTS), kind="str",
                       choices=lambda: tuple(COSTS))
    optimizer: str = option("sgd", "how gradients update the weights; each has its own "
                            "hyper-parameters (below)", _one_of(lambda: OPTIMIZERS), kind="str",
                            choices=lambda: tuple(OPTIMIZERS))
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
    shift: float = option(0.0, "distort training images each step: shift each by up to this "
                          "many pixels in x and y", _nonnegative, kind="float")
    rotation: float = option(0.0, "distort: rotate each training image by up to this many "
                             "degrees", lambda n, v: check_float(n, v, minimum=0.0, below=180.0),
                             kind="float")
    zoom: float = option(0.0, "distort: scale each axis of each training image by a factor in "
                         "[1 - zoom, 1 + zoom]", _fraction, kind="float")
    shear: float = option(0.0, "distort: shear each training image horizontally by up to this "
                          "many degrees", lambda n, v: check_float(n, v, minimum=0.0, below=90.0),
                          kind="float")
    elastic_alpha: float = option(0.0, "distort: elastic displacements of this scale in pixels "
                                  "(Simard et al. 2003 use 34 with σ = 4 on MNIST)",
                                  _nonnegative, kind="float")
    elastic_sigma: float = option(4.0, "the width σ of the Gaussian that smooths the elastic "
                                  "displacement field", lambda n, v: check_float(n, v, above=0.0),
                                  kind="float")
    flip: bool = option(False, "distort: mirror half of the training images left to right (for "
                        "clothes; wrong for digits)", check_bool, kind="bool")
    early_stopping: bool = option(False, "stop when the monitored value has not improved for "
                                  "patience epochs, and restore the best weights", check_bool,
                                  kind="bool")
    monitor: str = option("validation_accuracy", "the value early stopping and the plateau "
                          "schedule watch (validation_loss and train_loss are earlier names "
                          "of the costs)", check_monitor, kind="str", choices=lambda: MONITORS)
    patience: int = option(10, "epochs without improvement before early stopping stops",
                           _positive_int, kind="int")
    min_delta: float = option(0.0, "the least change of the monitored value that counts as an "
                              "improvement", lambda n, v: check_float(n, v, minimum=0.0),
                              kind="float")
    restore_best: bool = option(True, "with early stopping, end with the best epoch's weights",
                                check_bool, kind="bool")
    init: str = option("auto", lambda: "initial weights; auto takes the activation's own ("
                       + ", ".join(f"{a.init} for {a.name}" for a in ACTIVATIONS.values()) + ")",
                       _one_of(init_names), kind="str", choices=init_names)
    dtype: str = option("float32", "floating dtype of parameters and data",
                        lambda n, v: check_dtype(v, n), kind="str", choices=lambda: DTYPES)
    dataset: str = option("mnist", "mnist (embedded), fashion-mnist, kmnist or a folder of "
                          "MNIST-format files (not with your own x, y)", _dataset, kind="str")
    scale: Any = option(255, "pixels of a named data set ÷255, ÷256 (the original program) or "
                        "standardized; stored with the model", lambda n, v: check_scale(v),
                        kind="scale", choices=lambda: SCALES)
    shuffle: bool = option(True, "shuffle the training rows every epoch", check_bool,
                           kind="bool")
    seed: int | None = option(None, "seeds initial weights and order: the same run on every "
                              "backend", _seed, kind="int",
                              default_text="fresh entropy, recorded in the result")
    threads: int | None = option(None, "BLAS threads on the CPU", _threads, kind="int",
                                 default_text="1 for small products, else the idle cores")
    fast_path: str = option("auto", f"CuPy: fused CUDA kernels, {GRAPH_STEPS} steps per CUDA "
                            "graph; JAX: the epoch compiled into one program; auto uses them "
                            "where they apply, on insists, off keeps the portable Array-API "
                            "step",
                            _one_of(lambda: FAST_PATH_MODES), kind="str",
                            choices=lambda: FAST_PATH_MODES)
    optimizer_options: dict[str, Any] = option(
        None, "the optimizer's own hyper-parameters (see each optimizer)", _mapping,
        kind="dict", default_text="the optimizer's defaults", cli=False)  # type: ignore[assignment]

    def __post_init__(self):
        if self.optimizer_options is None:
            object.__setattr__(self, "optimizer_options", {})
        for f in dataclasses.fields(self):
            value = f.metadata["check"](f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        if self.layers is not None and COSTS[self.cost].targets == "classes":
            check_layers(self.layers)  # a classifier: two outputs at least
        object.__setattr__(self, "optimizer_options",
                           hyper_parameters(self.optimizer, self.optimizer_options))
        if OPTIMIZERS[self.optimizer].full_batch:
            self._check_full_batch()

    def _check_full_batch(self) -> None:
        """A full-batch optimizer's line search needs the same cost each time it looks."""
        noisy = [f"{name}={getattr(self, name)!r}" for name in ("dropout", "input_dropout")
                 if getattr(self, name)]
        if self.max_norm is not None:
            noisy.append(f"max_norm={self.max_norm!r}")
        if self.distortions.active:
            noisy.append(self.distortions.describe())
        if noisy:
            raise ValueError(f"optimizer={self.optimizer!r} minimises one fixed cost over the "
                             f"whole training set, which {' and '.join(noisy)} would change "
                             "between its evaluations: leave them out, or use optimizer='sgd' "
                             "or 'adam'")

    @property
    def distortions(self) -> DistortionSpec:
        """The distortions of the training images (:mod:`portamlp.training.distortions`)."""
        return DistortionSpec.from_options(self)

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("optimizer_options") or {}
        if name in options:
            return options[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (JSON-ready), the optimizer's hyper-parameters among the options; a
        callable schedule is named ``"callable:<name>"``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "optimizer_options"}
        d.update(self.optimizer_options)
        d["layers"] = list(self.layers) if self.layers else None
        if callable(self.learning_rate_schedule):
            name = getattr(self.learning_rate_schedule, "__qualname__", "function")
            d["learning_rate_schedule"] = f"callable:{name}"
        return d

    @classmethod
    def split(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Flat options (``to_dict``'s form, or ``train``'s keywords) as this class's keyword
        arguments: the optimizer's hyper-parameters go into ``optimizer_options``; those of
        other optimizers left at their defaults (an earlier run record holds them all) are
        dropped; other names are kept, for the constructor to refuse."""
        names = {f.name for f in dataclasses.fields(cls)}
        out = {k: v for k, v in options.items() if k in names}
        optimizer = options.get("optimizer", cls.optimizer)
        own = {hp.name for hp in _optimizer_class(optimizer).hyper_parameters} \
            if isinstance(optimizer, str) and optimizer in OPTIMIZERS else set()
        extra = dict(out.get("optimizer_options") or {})
        for key, value in options.items():
            if key in names:
                continue
            if key in own or not _is_default_elsewhere(key, value):
                extra[key] = value
        out["optimizer_options"] = extra
        return out


def _optimizer_class(name: str):
    return OPTIMIZERS.lookup(name)


def _is_default_elsewhere(key: str, value: Any) -> bool:
    """Whether ``key`` is a hyper-parameter of some optimizer and ``value`` its default."""
    return any(hp.name == key and hp.default == value
               for opt in OPTIMIZERS.values() for hp in opt.hyper_parameters)


@dataclass(frozen=True)
class RunOption:
    """An argument of :func:`portamlp.train` that is not part of the run's configuration."""

    name: str
    default: Any
    help: str
    #: "int", "float", "str", "bool", "path" for the command line; None: Python only.
    kind: str | None = None
    default_text: str | None = None


#: The other arguments of ``train``, in signature order.
RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("x", None, "your own training inputs (n, n_features) instead of a data set"),
    RunOption("y", None, "your own training targets: class indices 0..k-1 (n,); values "
              "(n,) or (n, k) for squared_error and poisson; a 0/1 matrix (n, k) for "
              "binary_cross_entropy"),
    RunOption("validation_data", None, "(x, y) to validate on after each epoch, with x"),
    RunOption("test_data", None, "(x, y) to test on at the end, with x"),
    RunOption("sample_weight", None, "a weight per training row: weighs its cost and gradient"),
    RunOption("network", None, "continue training this Network, or the model file at this path "
              "(its layers, activation, cost)",
              kind="path"),
    RunOption("optimizer_state", None, "with network=: a previous result's optimizer_state, to "
              "continue its momentum or Adam moments"),
    RunOption("backend", None, "numpy, cupy, torch, array_api_strict, auto, or any installed "
              "library that implements the Array API", kind="str",
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


@dataclass(frozen=True)
class Declared:
    """One option as the command line and the docs show it.

    ``owner`` is the optimizer a hyper-parameter belongs to (None for the others); ``kind``
    None marks a Python-only option.
    """

    name: str
    kind: str | None
    default: Any
    help: str
    choices: tuple | None = None
    default_text: str | None = None
    cli: bool = True
    owner: str | None = None

    @property
    def shown_default(self) -> str:
        """The default as the help text says it."""
        if self.default_text is not None:
            return self.default_text
        return "none" if self.default is None else str(self.default)


def declared_options() -> Iterator[Declared]:
    """Every option of ``train``, in order: the configuration's, the registered optimizers'
    hyper-parameters (each once, under the first optimizer declaring it), the run's."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == "optimizer_options":
            continue
        meta = f.metadata
        choices = tuple(meta["choices"]()) if meta["choices"] else None
        text = meta["help"]() if callable(meta["help"]) else meta["help"]
        yield Declared(f.name, meta["kind"], f.default, text, choices,
                       meta["default_text"], meta["cli"])
    seen = set()
    for opt in OPTIMIZERS.values():
        for hp in opt.hyper_parameters:
            if hp.name not in seen:
                seen.add(hp.name)
                yield Declared(hp.name, hp.kind, hp.default, f"{opt.name}: {hp.help}",
                               owner=opt.name)
    for o in RUN_OPTIONS:
        yield Declared(o.name, o.kind, o.default, o.help, default_text=o.default_text,
                       cli=o.kind is not None)


def options_table() -> str:
    """The table of ``train``'s options (Markdown) that the documentation includes, generated from
    the declarations."""
    def code(v: Any) -> str:
        return f"`{v!r}`"

    rows = ["| option | default | values | meaning |", "|---|---|---|---|"]
    for d in declared_options():
        default = d.default_text or code(d.default)
        if d.choices:
            values = ", ".join(code(c) for c in d.choices)
        elif d.kind is None:
            values = "Python only"
        else:
            values = {"layers": "ints"}.get(d.kind, d.kind)
            if not d.cli:
                values += ", Python only"
        rows.append(f"| `{d.name}` | {default} | {values} | {d.help} |")
    return "\n".join(rows)


def options_doc(indent: str = "    ") -> str:
    """The numpydoc parameter list of ``train``, generated from the declarations."""
    lines = []
    for d in declared_options():
        if d.choices:
            kind = "{" + ", ".join(repr(c) for c in d.choices) + "}"
        elif d.kind is None:
            kind = "optional"
        else:
            kind = {"layers": "sequence of int or str"}.get(d.kind, d.kind)
        default = d.default_text if d.default_text is not None else repr(d.default)
        lines.append(f"{d.name} : {kind}")
        lines.extend(textwrap.wrap(f"{d.help}; default: {default}.", width=92,
                                   initial_indent=indent, subsequent_indent=indent))
    return textwrap.indent("\n".join(lines), indent)


def cli_options() -> list[Declared]:
    """The options that are ``portamlp train`` flags and keys of a ``--config`` TOML file."""
    return [d for d in declared_options() if d.cli]


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
    #: Whether a fast step trained (CuPy's kernels or JAX's compiled epoch; see the
    #: ``fast_path`` option), else the portable one.
    fast_step: bool = False
    #: Seconds spent compiling the fast step (JAX), not counted in the epochs' seconds.
    compile_seconds: float = 0.0


if __name__ == "__main__":  # python -m portamlp.training.config: the options table
    print(options_table())
