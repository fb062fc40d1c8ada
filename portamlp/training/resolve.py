"""Resolving a training run: from ``train()``'s options to what will run.

:func:`resolve_run` decides everything that can be decided before any training: the run's
configuration (a resumed run's, a given network's, the defaults — an option the caller wrote
wins, a conflicting one is refused), the backend (the data's own unless told), where the network
comes from (given, checkpointed, or drawn afresh), the communicator of a distributed run. It
trains nothing and stages no data; :func:`portamlp.training.train.execute` does that.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import Backend, backend_of, get_backend, library_for
from ..checks import check_dtype, suggestion
from ..distributed import Communicator, communicator
from ..errors import warn
from ..files.checkpoints import Checkpoint, checkpoint_path, load_checkpoint
from ..files.models import load
from ..files.writing import check_writable_folder, temporary_files
from ..nn.inputs import host_numeric, label_range
from ..nn.network import Network
from .config import DEFAULT_HIDDEN, DEFAULT_LAYERS, RUN_OPTIONS, TrainConfig
from .optimizers import OPTIMIZERS
from .seeds import fresh_seed

#: Rows a full-batch optimizer (L-BFGS) computes at once when ``batch_size`` is not given.
FULL_BATCH_CHUNK = 8192

__all__ = ["Run", "DataSource", "resolve_run", "CONFIG_NAMES", "check_keywords"]

#: The options that make up a run's configuration (TrainConfig's fields, less the mapping of
#: the optimizer's own hyper-parameters, which are options by their own names).
CONFIG_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig)
                     if f.name != "optimizer_options")


@dataclass(frozen=True)
class DataSource:
    """The data a run trains on: the caller's arrays, or a named data set (``x`` None)."""

    x: Any = None
    y: Any = None
    validation_data: Any = None
    test_data: Any = None
    sample_weight: Any = None
    root: Any = None
    download: bool = False

    @property
    def own(self) -> bool:
        """True for the caller's own arrays."""
        return self.x is not None


@dataclass
class Run:
    """A resolved training run: what :func:`~portamlp.training.train.execute` trains."""

    config: TrainConfig
    backend: Backend
    comm: Communicator
    data: DataSource
    #: A network to continue (``train(network=...)``), else None.
    network: Network | None
    #: The checkpoint a resumed run continues, else None.
    checkpoint: Checkpoint | None
    #: Where checkpoints go (None: none are written).
    checkpoint_dir: Path | None
    optimizer_state: dict | None
    callbacks: list[Callable]
    progress: bool | None
    #: BLAS threads (None: portamlp's choice).
    threads: int | None


def check_keywords(extra: dict[str, Any]) -> dict[str, Any]:
    """``train``'s keywords beyond its parameters: the hyper-parameters some registered optimizer
    declares (returned); anything else is a TypeError with a suggestion."""
    declared = {hp.name for opt in OPTIMIZERS.values() for hp in opt.hyper_parameters}
    for name in extra:
        if name not in declared:
            known = [*CONFIG_NAMES, *declared, *(o.name for o in RUN_OPTIONS)]
            raise TypeError(f"train() got an unexpected keyword argument {name!r}"
                            f"{suggestion(name, known)}")
    return extra


def resolve_run(options: dict[str, Any], given: set[str]) -> Run:
    """A run from ``train``'s options (``options``: every parameter, the optimizer's
    hyper-parameters by name; ``given``: the names the caller wrote)."""
    config = {name: options[name] for name in CONFIG_NAMES}
    hyper = check_keywords(options["optimizer_options"])
    config.update(hyper)
    given = set(given) & (set(CONFIG_NAMES) | set(hyper))
    data = DataSource(*(options[k] for k in ("x", "y", "validation_data", "test_data",
                                             "sample_weight", "root", "download")))
    comm = communicator(options["distributed"])
    callbacks = _callbacks(options["callbacks"])
    network, checkpoint = options["network"], options["checkpoint"]
    _check_data(data)

    ckpt = None
    if options["resume"] is not None:
        if network is not None:
            raise ValueError("pass either network= or resume=, not both")
        config, ckpt = _config_for_resume(options["resume"], config, given, data.own)
        checkpoint = options["resume"] if checkpoint is None else checkpoint
    elif checkpoint is not None and checkpoint_path(checkpoint).exists():
        raise FileExistsError(f"{checkpoint} already holds a checkpoint; pass resume="
                              f"{str(checkpoint)!r} to continue that run, or choose another "
                              "directory")
    if checkpoint is not None and comm.is_root:  # rank 0 writes the checkpoints
        check_writable_folder(checkpoint)  # before training, not at the first checkpoint
        for stale in temporary_files(checkpoint_path(checkpoint)):  # left by a killed write
            stale.unlink(missing_ok=True)
    if isinstance(network, (str, os.PathLike)):  # a model file (or a checkpoint's network)
        network = load(network, options["backend"], options["device"])
    if network is not None:
        _adopt_network(network, config, given)
    elif options["optimizer_state"] is not None:
        raise ValueError("optimizer_state continues the training of a given network: pass "
                         "network= too")
    device = options["device"]
    be = _choose_backend(options["backend"], device, network, data.x)
    if device is None and network is None:
        be = comm.place(be)  # with several ranks, each on its node's GPU local_rank
    if config["seed"] is None:
        config["seed"] = comm.share(fresh_seed())
    if config["layers"] is None:
        config["layers"] = DEFAULT_LAYERS if not data.own else \
            _infer_layers(data.x, data.y, _cost_targets(config["cost"]))
    optimizer = config["optimizer"]
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS and \
            OPTIMIZERS[optimizer].full_batch:
        _full_batch_options(config, given)
    # the caller's hyper-parameters are the chosen optimizer's or refused (a checkpoint's were
    # read leniently: an earlier release saved every optimizer's)
    cfg = TrainConfig(**{k: config[k] for k in CONFIG_NAMES},
                      optimizer_options={k: v for k, v in config.items() if k not in CONFIG_NAMES})
    if cfg.validation_split and not data.own:
        raise ValueError("validation_split divides your own x and y; a named data set takes "
                         "its validation rows from its training file: use validation_length")
    if data.own:
        for name in ("dataset", "scale"):
            if name in given:
                warn(f"{name}={config[name]!r} is ignored: it applies to named data sets, and "
                     "your own x is used as given")
    if cfg.batch_size < comm.size:
        raise ValueError(f"batch_size={cfg.batch_size} is smaller than the {comm.size} ranks: "
                         "each rank needs rows of every mini-batch; use batch_size >= "
                         f"{comm.size} or fewer ranks")
    threads = cfg.threads
    if threads is None and comm.size > 1:  # the ranks of a node share its cores
        threads = max(1, (os.cpu_count() or 1) // comm.local_size)
    return Run(config=cfg, backend=be, comm=comm, data=data, network=network, checkpoint=ckpt,
               checkpoint_dir=None if checkpoint is None else Path(checkpoint),
               optimizer_state=options["optimizer_state"], callbacks=callbacks,
               progress=options["progress"] if comm.is_root else False, threads=threads)


def _full_batch_options(config: dict[str, Any], given: set[str]) -> None:
    """A full-batch optimizer (L-BFGS) sums over every row each time: ``batch_size`` only
    bounds the rows computed at once (the default of 10 would be needlessly slow), and the
    options of step sizes and orders do nothing: a warning names those the caller set."""
    if "batch_size" not in given:
        config["batch_size"] = FULL_BATCH_CHUNK
    unused = sorted(given & {"learning_rate", "learning_rate_schedule", "warmup_epochs",
                             "decay_factor", "decay_every", "shuffle"})
    if unused:
        warn(f"{', '.join(unused)} {'has' if len(unused) == 1 else 'have'} no effect with "
             f"optimizer={config['optimizer']!r}: its line search chooses each step over the "
             "whole training set (epochs counts its iterations)")


def _check_data(data: DataSource) -> None:
    if (data.x is None) != (data.y is None):
        raise ValueError("pass both x and y (your own data), or neither (a named data set)")
    if not data.own and (data.validation_data is not None or data.test_data is not None
                         or data.sample_weight is not None):
        raise ValueError("validation_data, test_data and sample_weight go with your own x and y")


def _callbacks(callbacks) -> list[Callable]:
    if callable(callbacks):
        return [callbacks]
    try:
        items = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callable or a list of callables, got "
                        f"{callbacks!r}") from None
    for cb in items:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables, got {cb!r}")
    return items


def _config_for_resume(directory, config: dict, given: set,
                       own_data: bool) -> tuple[dict, Checkpoint]:
    """The checkpointed run's configuration; a new value only for ``epochs`` (to extend the
    run)."""
    ckpt = load_checkpoint(directory)
    optimizer = ckpt.config.get("optimizer")
    if isinstance(optimizer, str) and optimizer not in OPTIMIZERS:
        raise ValueError(f"the run checkpointed in {directory} used optimizer={optimizer!r}, which "
                         f"is not registered here (the registered ones are {list(OPTIMIZERS)}); "
                         "if it is your own, register it before resuming (OPTIMIZERS.register, "
                         "or portamlp --import MODULE on the command line)")
    declared = {hp.name for opt in OPTIMIZERS.values() for hp in opt.hyper_parameters}
    unknown = sorted(set(ckpt.config) - set(CONFIG_NAMES) - declared)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in the checkpointed run's configuration "
                         f"({ckpt.path}); the checkpoint is damaged or was written by another "
                         "program")
    saved = _saved_options(ckpt.config)
    if isinstance(saved.get("layers"), list):
        saved["layers"] = tuple(saved["layers"])
    schedule = saved.get("learning_rate_schedule", "")
    if isinstance(schedule, str) and schedule.startswith("callable:"):
        if not callable(config["learning_rate_schedule"]):
            raise ValueError(f"the run checkpointed in {directory} used a callable "
                             f"learning_rate_schedule ({schedule[9:]}); pass it again to "
                             "resume")
        saved["learning_rate_schedule"] = config["learning_rate_schedule"]
        given = given - {"learning_rate_schedule"}
    for key in given - {"epochs"}:
        value = config[key]
        if key in saved and (tuple(value) if key == "layers" else value) != saved[key]:
            raise ValueError(f"{key}={value!r} differs from the checkpointed run's "
                             f"{saved[key]!r}; a resumed run keeps its configuration (only "
                             "epochs may change)")
    if ckpt.own_data and not own_data:
        raise ValueError(f"the run checkpointed in {directory} trained on your own arrays: pass "
                         "the same x= and y= (and validation_data=, test_data=) again to resume "
                         "it")
    if own_data and not ckpt.own_data:
        raise ValueError(f"the run checkpointed in {directory} trained on the "
                         f"{saved.get('dataset', 'mnist')!r} data set; resume it without x and y")
    done = ckpt.position.epoch - 1
    if "epochs" in given and config["epochs"] != saved.get("epochs"):
        if config["epochs"] <= done:
            warn(f"the checkpointed run has already done {done} epoch(s); epochs="
                 f"{config['epochs']} trains no further (pass a larger epochs to extend it)")
        elif saved.get("learning_rate_schedule") == "cosine":
            warn(f"epochs changes from {saved.get('epochs')} to {config['epochs']} under the "
                 f"{saved['learning_rate_schedule']!r} schedule: the remaining epochs follow the "
                 f"schedule over {config['epochs']} epochs (the first {done} followed it over "
                 f"{saved.get('epochs')})")
        saved["epochs"] = config["epochs"]
    elif saved.get("epochs", 0) <= done:
        warn(f"the checkpointed run has already done all its {done} epoch(s); pass a larger "
             "epochs to extend it")
    return {**config, **saved}, ckpt


def _saved_options(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's configuration as flat options: its configuration names and its
    optimizer's hyper-parameters (an earlier checkpoint holds every optimizer's; those of other
    optimizers at their defaults are dropped)."""
    split = TrainConfig.split(dict(saved))
    out = {k: v for k, v in split.items() if k in CONFIG_NAMES}
    out.update(split.get("optimizer_options", {}))
    return out


def _adopt_network(network: Network, config: dict, given: set) -> None:
    """A given network's layers, activation, cost and dtype win (conflicts are errors)."""
    if not isinstance(network, Network):
        raise TypeError(f"network must be a portamlp.Network or the path of a model file, got "
                        f"{type(network).__name__}")
    own = {"activation": network.activation, "cost": network.cost, "dtype": network.dtype,
           "layers": network.layers}
    for key, value in own.items():
        mine = config[key]
        if key in given and mine is not None:
            mine = tuple(mine) if key == "layers" and not isinstance(mine, str) else mine
            if key == "dtype":
                mine = check_dtype(mine)
            if mine != value:
                raise ValueError(f"{key}={config[key]!r} differs from the given network's "
                                 f"{value!r}; leave it out to continue training that network")
        config[key] = value
    prep = network.preprocessing
    if prep is not None and "scale" in given and config["scale"] != prep.scale:
        from ..datasets.scaling import check_scale

        if check_scale(config["scale"]) != prep.scale:
            raise ValueError(f"scale={config['scale']!r} differs from the given network's "
                             f"{prep.scale!r} ({prep.describe()}): it learnt from pixels "
                             "prepared that way; leave scale out to continue training it")
    if prep is not None and "scale" not in given:
        config["scale"] = prep.scale


def _choose_backend(backend, device, network: Network | None, x) -> Backend:
    """Explicit ``backend=`` wins; else the given network's; else ``x``'s library and device
    (scikit-learn's rule: the computation follows the data); else the default."""
    if network is not None:
        if backend is None and device is None:
            return network.backend
        wanted = get_backend(backend if backend is not None else network.backend, device)
        if wanted.name != network.backend.name or wanted.device != network.backend.device:
            raise ValueError(f"the given network lives on {network.backend.name} "
                             f"{network.backend.device}, not {wanted.name} {wanted.device}; "
                             "move it first with network.to(backend, device)")
        return network.backend
    if backend is not None:
        return get_backend(backend, device)
    library = None if x is None else library_for(x)
    if library is not None:
        return backend_of(x) if device is None else get_backend(library, device)
    return get_backend(None, device)


def _cost_targets(cost: Any) -> str:
    """What the named cost's targets are ("classes" for a name that is not one: the
    configuration's check names it)."""
    from ..nn.costs import COSTS

    return COSTS[cost].targets if isinstance(cost, str) and cost in COSTS else "classes"


def _infer_layers(x, y, targets: str = "classes") -> tuple[int, ...]:
    """``(n_features, DEFAULT_HIDDEN, n_outputs)`` for your own data: ``n_outputs`` the largest
    label + 1 for classes (labels are checked first: strings get the message that says how to
    map them), the columns of ``y`` for values and indicators (1 for a 1-D ``y``)."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = host_numeric(x, "x").shape
    if len(shape) != 2:
        raise ValueError(f"x must have shape (n_samples, n_features), got shape {tuple(shape)}; "
                         "or pass layers= explicitly")
    if targets != "classes":
        y_shape = getattr(y, "shape", None) or host_numeric(y, "y").shape
        return (int(shape[1]), DEFAULT_HIDDEN, int(y_shape[1]) if len(y_shape) == 2 else 1)
    top, distinct = label_range(y)
    if top + 1 > max(2, distinct):
        warn(f"y holds {distinct} distinct labels but the largest is {top}: the network gets "
             f"{top + 1} output units, one per index 0..{top}; map your labels to "
             f"0..{distinct - 1} (numpy.unique(y, return_inverse=True)) or pass layers=")
    return (int(shape[1]), DEFAULT_HIDDEN, max(2, top + 1))
