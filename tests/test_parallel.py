"""Data-parallel training over MPI and batch inference on Dask arrays (portamlp.distributed).

The MPI tests launch ``mpiexec -n 2 python SCRIPT`` in a subprocess and compare with the same run
in this process: the same parameters to float64 round-off. They are skipped, saying what to
install, where mpiexec or mpi4py is missing. No test here needs a GPU: the CuPy path of the
communicator (CUDA-aware or staged) is not exercised; the host-staged path is, through
array-api-strict. No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_bench

import portamlp
from portamlp.distributed import SINGLE_PROCESS, communicator

ROOT = Path(__file__).resolve().parents[1]
#: The small runs here trigger portamlp's advice (short last batch, saturated outputs).
pytestmark = pytest.mark.filterwarnings("ignore::portamlp.PortamlpWarning")


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel's, in this environment
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpiexec and mpi4py: pip install \"portamlp[mpi]\" (the mpich and mpi4py "
           "wheels)")
needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None,
    reason="needs Dask: pip install \"portamlp[dask]\"")


def run_ranks(n: int, args: list, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``mpiexec -n n ARGS``; the whole process group is killed if it outlives ``timeout``."""
    assert MPIEXEC is not None
    proc = subprocess.Popen([MPIEXEC, "-n", str(n), *map(str, args)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec -n {n} still running after {timeout} s (a rank left waiting?)\n"
                    f"{out[-2000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def write_script(tmp_path: Path, name: str, body: str) -> Path:
    """COMMON, then ``body`` run as the script's main part (importing the file runs only
    COMMON: this process uses its definitions to train without MPI)."""
    path = tmp_path / name
    main = textwrap.indent(textwrap.dedent(body), "    ")
    path.write_text(f"{COMMON}\n\nif __name__ == '__main__':\n{main}")
    return path


#: What the scripts share: small data, run options and a summary of a result, also used here to
#: run the same trainings in one process.
COMMON = textwrap.dedent('''
    import importlib.util, json, os, signal, sys
    import numpy as np
    import portamlp
    from portamlp.distributed import communicator

    JAX = importlib.util.find_spec("jax") is not None
    if JAX:  # float64 on JAX needs its 64-bit mode
        import jax
        jax.config.update("jax_enable_x64", True)


    def data(rows=203):
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((rows, 16)), rng.integers(0, 4, rows)
        xv, yv = rng.standard_normal((31, 16)), rng.integers(0, 4, 31)
        return x, y, xv, yv, rng.uniform(0.5, 2.0, rows)


    def configs():
        x, y, xv, yv, w = data()
        common = dict(x=x, y=y, validation_data=(xv, yv), test_data=(xv, yv), dtype="float64",
                      seed=3, progress=False)
        return {
            # odd batch (shares of 8 and 9 rows), a short last batch, dropout on both sides,
            # sample weights, Nesterov momentum, max-norm and the plateau schedule
            # scale= with own x is ignored with a warning (which rank 0 alone gives)
            "sgd": dict(common, layers=[16, 9, 7, 4], batch_size=17, epochs=3, momentum=0.9,
                        scale=256,
                        nesterov=True, learning_rate=0.3, dropout=0.2, input_dropout=0.1,
                        max_norm=3.0, sample_weight=w, learning_rate_schedule="plateau",
                        plateau_patience=1, backend="numpy"),
            # Adam, cross-entropy, no shuffling; array-api-strict: the host-staged buffers;
            # the rows as 4x4 images distorted (each rank distorts its share as one process
            # distorts those rows)
            "adam": dict(common, layers=[16, 8, 4], activation="relu", cost="cross_entropy",
                         optimizer="adam", learning_rate=0.01, weight_decay=1e-3,
                         batch_size=32, epochs=2, shuffle=False, backend="array_api_strict",
                         rotation=10.0, shift=0.5, elastic_alpha=1.0, elastic_sigma=1.0),
            # early stopping: every rank must stop at the same epoch
            "early": dict(common, layers=[16, 6, 4], batch_size=10, epochs=8,
                          learning_rate=3.0, early_stopping=True, patience=1,
                          backend="numpy"),
            # JAX: arrays that cannot be written in place, through the host to MPI
            **({"jax": dict(common, layers=[16, 8, 4], batch_size=16, epochs=2, momentum=0.5,
                            learning_rate=0.5, backend="jax")} if JAX else {}),
        }


    def summary(result):
        weights, biases = result.network.host_parameters()
        return {"parameters": [p.tolist() for p in weights + biases],
                "history": [[h.epoch, h.train_loss, h.validation_accuracy, h.validation_loss]
                            for h in result.history],
                "test_accuracy": result.test_accuracy, "stopped_early": result.stopped_early,
                "best_epoch": result.best_epoch}


    class SignalledNetwork(portamlp.Network):
        """Sends SIGTERM to its own process at its ``at``-th backprop call."""

        at = None
        calls = 0

        def backprop(self, *args, **kwargs):
            type(self).calls += 1
            if type(self).calls == type(self).at:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().backprop(*args, **kwargs)


    def first_network(kind=portamlp.Network):
        net = portamlp.Network.initialize([16, 9, 4], seed=5, dtype="float64",
                                          backend="numpy")
        return kind(net.weights, net.biases, activation=net.activation, cost=net.cost,
                    backend=net.backend)


    def resumable_options():
        x, y, xv, yv, _ = data()
        return dict(x=x, y=y, validation_data=(xv, yv), batch_size=16, learning_rate=0.5,
                    momentum=0.9, dropout=0.1, seed=3, progress=False)
''')


def assert_same_run(got: dict, expected: dict, tol: float = 1e-10) -> None:
    assert len(got["parameters"]) == len(expected["parameters"])
    for a, b in zip(got["parameters"], expected["parameters"]):
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) < tol
    assert len(got["history"]) == len(expected["history"])
    for g, e in zip(got["history"], expected["history"]):
        assert g[0] == e[0] and g[2] == e[2]  # epoch, validation accuracy
        assert g[1] == pytest.approx(e[1], abs=tol) and g[3] == pytest.approx(e[3], abs=tol)
    for key in ("test_accuracy", "stopped_early", "best_epoch"):
        assert got[key] == expected[key], key


# ---------------------------------------------------------------------- without MPI
def test_one_process_by_default_and_clear_errors():
    assert communicator(None) is SINGLE_PROCESS
    assert SINGLE_PROCESS.shard == (0, 1) and SINGLE_PROCESS.is_root
    assert SINGLE_PROCESS.gradient_exchange([], None) is None
    with pytest.raises(ValueError, match=r"distributed must be None .* \['mpi'\], got 'nccl'"):
        portamlp.train(distributed="nccl", epochs=1)


def test_import_portamlp_imports_neither_mpi4py_nor_dask():
    code = ("import sys, portamlp, portamlp.distributed, portamlp.parallel; print(sorted(m for "
            "m in ('mpi4py', 'dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    import portamlp.distributed
    import portamlp.parallel  # the earlier path names the same functions

    assert portamlp.parallel.predict_dask is portamlp.distributed.predict_dask
    assert portamlp.parallel.predict_proba_dask is portamlp.distributed.predict_proba_dask


class _TwinRanks:
    """A two-rank communicator inside one process: the other rank contributes ``other``."""

    rank, size = 0, 2

    def __init__(self, other):
        self.other = other

    def allreduce(self, flat):
        return flat + self.other


def test_gradient_exchange_packs_one_buffer_and_reports_signals():
    from portamlp.distributed import GradientExchange

    be = portamlp.get_backend("numpy")
    params = [np.ones((3, 2)), np.ones(3)]
    grads = [np.arange(6.0).reshape(3, 2), np.array([1.0, 2.0, 3.0])]
    other = np.concatenate([np.full(9, 10.0), [5.0], [0.0, float(signal.SIGTERM)]])
    exchange = GradientExchange(_TwinRanks(other), params, be)
    loss, summed, signalled = exchange.reduce(np.asarray(2.0), grads, None)
    assert float(loss) == 7.0 and signalled == (1, signal.SIGTERM)
    assert np.array_equal(summed[0], grads[0] + 10) and summed[1].shape == (3,)
    quiet = GradientExchange(_TwinRanks(np.zeros(12)), params, be)
    assert quiet.reduce(np.asarray(1.0), grads, signal.SIGINT)[2] == (0, signal.SIGINT)
    assert quiet.reduce(np.asarray(1.0), grads, None)[2] is None


# --------------------------------------------------------------------- 2 MPI ranks
@needs_mpi
@pytest.mark.parametrize("setting, says", [
    (None, "go through host memory (staged): MPIX_Query_cuda_support() returned 0"),
    ("1", "go directly to MPI (CUDA-aware): PORTAMLP_MPI_CUDA_AWARE=1"),
    ("0", "go through host memory (staged): PORTAMLP_MPI_CUDA_AWARE=0"),
    ("yes", "PORTAMLP_MPI_CUDA_AWARE must be 1 (the MPI library is CUDA-aware) or 0"),
])
def test_the_mpi_module_says_how_device_buffers_travel(setting, says):
    env = {k: v for k, v in os.environ.items() if k != "PORTAMLP_MPI_CUDA_AWARE"}
    if setting is not None:
        env["PORTAMLP_MPI_CUDA_AWARE"] = setting
    proc = subprocess.run([sys.executable, "-m", "portamlp.distributed.mpi"], capture_output=True,
                          text=True, env=env, timeout=120)
    if setting is None and "returned 1" in proc.stdout:
        pytest.skip("this MPI library is CUDA-aware")
    assert says in proc.stdout + proc.stderr
    assert "ranks: 1 (this is rank 0" in proc.stdout or setting == "yes"


@needs_mpi
def test_two_ranks_train_like_one_process(tmp_path):
    script = write_script(tmp_path, "equal.py", '''
        results = {name: summary(portamlp.train(**cfg, distributed="mpi"))
                   for name, cfg in configs().items()}
        if communicator("mpi").is_root:
            with open(sys.argv[1], "w") as f:
                json.dump(results, f)
    ''')
    proc = run_ranks(2, [sys.executable, script, tmp_path / "ranks.json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "ranks.json").read_text())
    shared = runpy.run_path(str(script), run_name="shared")
    for name, cfg in shared["configs"]().items():
        assert_same_run(got[name], shared["summary"](portamlp.train(**cfg)))
    assert got["early"]["stopped_early"]  # the early-stopping case did stop early
    # warnings come from rank 0 only (once per run that warns)
    assert proc.stderr.count("scale=256 is ignored") == 1


@needs_mpi
@pytest.mark.slow
def test_sigterm_on_one_rank_stops_all_and_the_checkpoint_resumes_exactly(tmp_path):
    script = write_script(tmp_path, "resume.py", '''
        mode, ckpt = sys.argv[1], sys.argv[2]
        comm = communicator("mpi")
        if mode == "interrupt":
            SignalledNetwork.at = 20 if comm.rank == 1 else None  # epoch 2, mini-batch 7
            try:
                portamlp.train(network=first_network(SignalledNetwork), epochs=4,
                               checkpoint=ckpt, distributed="mpi", **resumable_options())
            except portamlp.TrainingInterrupted as stop:
                print(f"rank {comm.rank}: {stop}", flush=True)
            else:
                sys.exit("not interrupted")
        else:
            options = resumable_options()
            result = portamlp.train(resume=ckpt, x=options["x"], y=options["y"],
                                    validation_data=options["validation_data"],
                                    distributed="mpi", progress=False)
            if comm.is_root:
                with open(sys.argv[3], "w") as f:
                    json.dump(summary(result), f)
    ''')
    ckpt = tmp_path / "ckpt"
    stopped = run_ranks(2, [sys.executable, script, "interrupt", ckpt], tmp_path)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    for rank in (0, 1):
        assert (f"rank {rank}: training stopped by SIGTERM on rank 1 of 2 in epoch 2 after "
                f"mini-batch 7 of 13; checkpoint saved") in stopped.stdout
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint.safetensors"]
    resumed = run_ranks(2, [sys.executable, script, "resume", ckpt, tmp_path / "out.json"],
                        tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    shared = runpy.run_path(str(script), run_name="shared")
    expected = portamlp.train(network=shared["first_network"](), epochs=4,
                              **shared["resumable_options"]())
    assert_same_run(json.loads((tmp_path / "out.json").read_text()),
                    shared["summary"](expected))


FAILING = '''
    mode = sys.argv[1]
    comm = communicator("mpi")
    x, y, xv, yv, _ = data(203 if comm.rank == 0 or mode != "data" else 202)

    def fail_on_rank_1(record, network):
        if comm.rank == 1 and mode == "raise":
            raise RuntimeError("boom on rank 1")

    if mode == "sigterm":
        SignalledNetwork.at = 5 if comm.rank == 1 else None
    how = dict(network=first_network(SignalledNetwork), epochs=100_000)
    if mode == "diverge":  # unbounded ReLU units and an absurd rate overflow at once
        how = dict(layers=[16, 9, 4], activation="relu", cost="cross_entropy",
                   learning_rate=1e30, epochs=3)
    try:
        portamlp.train(x=x, y=y, batch_size=16, callbacks=fail_on_rank_1, distributed="mpi",
                       progress=False, **how)
    except (portamlp.TrainingInterrupted, portamlp.DivergenceError) as stop:
        print(f"rank {comm.rank}: {stop}", flush=True)
        sys.exit(0)
    print(f"rank {comm.rank} finished", flush=True)
'''


@needs_mpi
@pytest.mark.parametrize("mode, message", [
    ("raise", "rank 1 of 2 failed: RuntimeError: boom on rank 1; aborting all 2 ranks"),
    ("data", "rank 1 of 2 failed: ValueError: this rank's data (rows of train/validation/test "
             "[202, None, None]"),
])
def test_an_exception_on_one_rank_aborts_every_rank(tmp_path, mode, message):
    script = write_script(tmp_path, "fail.py", FAILING)
    proc = run_ranks(2, [sys.executable, script, mode], tmp_path, timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "finished" not in proc.stdout


@needs_mpi
@pytest.mark.parametrize("mode, message", [
    # no checkpoint: SIGTERM on rank 1 at its 5th step still stops both ranks at that step
    ("sigterm", "training stopped by SIGTERM on rank 1 of 2 before the first epoch completed; "
                "nothing to keep"),
    # the summed loss diverges on every rank at once
    ("diverge", "training diverged in epoch 1, mini-batch 2 of 13"),
])
def test_failures_every_rank_sees_are_raised_by_every_rank(tmp_path, mode, message):
    script = write_script(tmp_path, "fail.py", FAILING)
    proc = run_ranks(2, [sys.executable, script, mode], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank}: {message}" in proc.stdout


@needs_mpi
@pytest.mark.slow
def test_cli_under_mpi_prints_and_writes_on_rank_zero_only(tmp_path):
    args = [sys.executable, "-m", "portamlp", "train", "--distributed", "mpi",
            "--train-length", "1010", "--validation-length", "200", "--test-length", "300",
            "--epochs", "2", "--batch-size", "20", "--seed", "1", "--threads", "1",
            "--learning-rate", "300",  # collapses: advice, from rank 0 only
            "--save", "net.json", "--checkpoint", "ckpt"]
    proc = run_ranks(2, args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2", "test accuracy",
                                                      "saved the network to net.json and the run "
                                                      "record to net.run.json"]
    assert proc.stderr.count("the network has collapsed") == 1, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".py") == [
        "ckpt", "net.json", "net.run.json"]
    record = json.loads((tmp_path / "net.run.json").read_text())
    alone = portamlp.train(train_length=1010, validation_length=200, test_length=300, epochs=2,
                           batch_size=20, seed=1, learning_rate=300.0, progress=False)
    assert record["test_accuracy"] == pytest.approx(alone.test_accuracy, abs=2 / 300)
    # a usage error is reported once, and every rank exits with its status
    again = run_ranks(2, args, tmp_path)
    assert again.returncode == 2
    assert again.stderr.count("net.json already exists") == 1


@needs_mpi
@pytest.mark.slow
def test_scaling_benchmark_quick_mode(tmp_path):
    out = tmp_path / "mpi_scaling.json"
    run_bench("mpi_scaling.py", "--quick", "--output", out)
    report = json.loads(out.read_text())
    assert [row["ranks"] for row in report["rows"]] == [1, 2, 1, 2]
    for row in report["rows"]:
        assert row["seconds_per_epoch"] > 0 and 0 <= row["communication_share"] <= 1
        assert 0 <= row["test_accuracy"] <= 1


# ---------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def small_network():
    return portamlp.train(train_length=1000, validation_length=0, test_length=0, epochs=1,
                          seed=0, backend="numpy", progress=False).network


@needs_dask
def test_predict_dask_is_lazy_chunked_and_holds_the_network_once(small_network):
    import dask
    import dask.array as da

    from portamlp.distributed import predict_dask, predict_proba_dask

    x, _ = portamlp.datasets.load_mnist("test", length=2500, flatten=True)
    dx = da.from_array(x, chunks=(1000, 392))  # split columns are merged into whole rows
    labels = predict_dask(small_network, dx)
    assert isinstance(labels, da.Array) and labels.chunks == ((1000, 1000, 500),)
    assert labels.dtype == np.int64
    keys = [k for k in labels.__dask_graph__() if "portamlp-network" in str(k)]
    assert len(keys) == 1  # one key holds the network; every chunk's task depends on it
    with dask.config.set(scheduler="synchronous"):
        assert np.array_equal(labels.compute(), small_network.predict(x))
        proba = predict_proba_dask(small_network, dx.reshape(2500, 28, 28))
        assert proba.shape == (2500, 10) and proba.chunks[0] == (1000, 1000, 500)
        # float32: chunks of 1,000 rows and the whole 2,500 take different BLAS paths
        np.testing.assert_allclose(proba.compute(), small_network.predict_proba(x),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="dask.array.Array"):
        predict_dask(small_network, x)
    with pytest.raises(ValueError, match=r"\(n_samples, 784\)"):
        predict_dask(small_network, da.zeros((10, 100), chunks=5))


@needs_dask
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Sending large graph:UserWarning")
def test_predict_dask_on_a_local_cluster_equals_predict_on_all_of_mnist(small_network):
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    from portamlp.parallel import predict_dask

    images = np.concatenate([portamlp.datasets.load_mnist(split, flatten=True)[0]
                             for split in ("train", "test")])
    assert images.shape == (70_000, 784)
    dx = da.from_array(images, chunks=(10_000, 784))
    expected = small_network.predict(images)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        labels = predict_dask(small_network, dx)
        assert labels.npartitions == 7
        assert np.array_equal(labels.compute(), expected)

        def loads():
            from portamlp.distributed.dask_inference import payload_loads

            return payload_loads()

        per_worker = client.run(loads)
    assert len(per_worker) == 2 and all(n <= 1 for n in per_worker.values())  # not per chunk
