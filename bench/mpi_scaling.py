"""Data-parallel scaling over MPI: epoch time on 1 and 2 ranks, and the share spent communicating.

Two configurations on MNIST (NumPy backend, float32, one BLAS thread per rank):

* 784-1024-1024-10 (ReLU, softmax cross-entropy, momentum 0.9) at global batch 256: enough
  arithmetic per step for two ranks to pay off (target: at least 1.6 times the throughput of
  one rank);
* 784-30-10 (Nielsen's: sigmoid, quadratic cost, learning rate 3.0) at global batch 10, where the
  step is so small that the per-step allreduce dominates.

Each run is ``mpiexec -n R python bench/mpi_scaling.py --worker ...`` with
``train(distributed="mpi")`` (one rank takes the ordinary single-process loop). Epoch time is
the best epoch's ``EpochRecord.seconds`` (training and validation; the first epoch is left out
when there are more); the communication share is the time rank 0 spent in (and waiting at)
``allreduce`` during that epoch, host staging included, over the epoch's time; "rank 0 CPU/wall"
is the CPU time rank 0 got in that epoch over its length (below 100 %: the machine was busy and
the rank waited for a core). The full run trains on all 50,000 training images and reports the
test accuracy of both rank counts (they should agree within 0.2 points).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/mpi_scaling.py
    python bench/mpi_scaling.py --quick        # tiny settings: checks the script's logic

Writes bench/results/mpi_scaling.json (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, write_report  # noqa: E402

from portamlp.backends.threads import idle_cores  # noqa: E402

TARGET = 1.6  # 2 ranks: at least this many times the throughput of 1 rank (784-1024-1024-10)

CONFIGS = {
    "784-1024-1024-10": dict(layers="784,1024,1024,10", activation="relu",
                             cost="cross_entropy", learning_rate=0.05, momentum=0.9,
                             batch_size=256),
    "784-30-10": dict(layers="784,30,10", activation="sigmoid", cost="quadratic",
                      learning_rate=3.0, batch_size=10),
}
FULL = {"784-1024-1024-10": dict(train_length=50_000, epochs=3),
        "784-30-10": dict(train_length=50_000, epochs=3)}
QUICK = {"784-1024-1024-10": dict(train_length=1024, validation_length=256, test_length=500,
                                  epochs=1),
         "784-30-10": dict(train_length=1000, validation_length=200, test_length=500, epochs=1)}


def worker(args) -> None:
    """One run under mpiexec: train, then rank 0 writes its per-epoch figures as JSON."""
    import portamlp
    from portamlp.distributed import communicator

    comm = communicator("mpi")
    spent: list[float] = []
    cpu: list[float] = []

    def communication(record, network):
        spent.append(getattr(comm, "seconds", 0.0))
        cpu.append(_cpu())

    options = json.loads(args.options)
    result = portamlp.train(seed=0, threads=1, progress=False, backend="numpy",
                            distributed="mpi", callbacks=communication, **options)
    if comm.is_root:
        deltas = [b - a for a, b in zip([0.0] + spent, spent)]
        Path(args.output).write_text(json.dumps({
            "epoch_seconds": [h.seconds for h in result.history],
            "communication_seconds": deltas,
            # CPU time rank 0 got in each epoch after the first (callback to callback): on a
            # shared machine, less than the epoch's seconds means the rank waited for a core.
            "cpu_seconds": [None] + [b - a for a, b in zip(cpu, cpu[1:])],
            "test_accuracy": result.test_accuracy,
            "allreduce_calls": getattr(comm, "calls", 0),
            "bytes_reduced": getattr(comm, "bytes", 0),
            "blas": _blas(),
        }))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _blas() -> str:
    from threadpoolctl import threadpool_info

    return ", ".join(f"{i['internal_api']} {i.get('architecture', '?')}"
                     for i in threadpool_info() if i["user_api"] == "blas")


def _ratio(cpu: float | None, seconds: float) -> str:
    return "n/a" if cpu is None else f"{cpu / seconds:.0%}"


def launch(mpiexec: str, ranks: int, options: dict) -> dict:
    """Run the worker on ``ranks`` ranks; its rank 0's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        cmd = [mpiexec, "-n", str(ranks), sys.executable, str(Path(__file__).resolve()),
               "--worker", "--options", json.dumps(options), "--output", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}"
                             f"{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings")
    parser.add_argument("--output", default=str(HERE / "results" / "mpi_scaling.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    beside = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit('mpiexec not found: pip install "portamlp[mpi]" (the mpich and mpi4py '
                         "wheels)")
    blas_env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"machine: {machine()}")
    print("OPENBLAS_CORETYPE is " + (repr(blas_env["OPENBLAS_CORETYPE"]) if
                                     blas_env["OPENBLAS_CORETYPE"] else "unset"))
    sizes = QUICK if args.quick else FULL
    rows, summary = [], {}
    print("\n| network | batch | ranks | s/epoch | images/s | speed-up | communication | "
          "rank 0 CPU/wall | test accuracy | idle cores before |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for name, config in CONFIGS.items():
        options = dict(config, **sizes[name])
        base = None
        for ranks in (1, 2):
            idle = idle_cores(0.5)  # this machine is shared: how much of it was free
            figures = launch(mpiexec, ranks, options)
            epochs = range(len(figures["epoch_seconds"]))
            best = min(epochs[1:] or epochs, key=lambda i: figures["epoch_seconds"][i])
            seconds = figures["epoch_seconds"][best]
            comm_share = figures["communication_seconds"][best] / seconds
            n_train = options["train_length"]
            base = seconds if base is None else base
            row = {"network": name, "batch_size": options["batch_size"], "ranks": ranks,
                   "seconds_per_epoch": seconds, "epoch_seconds": figures["epoch_seconds"],
                   "images_per_second": n_train / seconds, "speedup": base / seconds,
                   "communication_seconds": figures["communication_seconds"][best],
                   "rank0_cpu_seconds": figures["cpu_seconds"][best],
                   "communication_share": comm_share,
                   "allreduce_calls": figures["allreduce_calls"],
                   "bytes_reduced": figures["bytes_reduced"],
                   "test_accuracy": figures["test_accuracy"], "blas": figures["blas"],
                   "idle_cores_before": idle, "load_average_after": os.getloadavg()[0],
                   "options": options}
            rows.append(row)
            print(f"| {name} | {options['batch_size']} | {ranks} | {seconds:.3f} | "
                  f"{n_train / seconds:,.0f} | {base / seconds:.2f}x | {comm_share:.1%} | "
                  f"{_ratio(figures['cpu_seconds'][best], seconds)} | "
                  f"{figures['test_accuracy']:.2%} | {idle if idle is None else round(idle, 1)} |",
                  flush=True)
        one, two = rows[-2], rows[-1]
        summary[name] = {"speedup_2_ranks": two["speedup"],
                         "accuracy_difference_points": 100 * abs(two["test_accuracy"]
                                                                 - one["test_accuracy"])}
    big = summary["784-1024-1024-10"]["speedup_2_ranks"]
    verdict = "met" if big >= TARGET else "NOT met"
    print(f"\n784-1024-1024-10 on 2 ranks: {big:.2f}x the throughput of 1 rank (target "
          f"{TARGET}x: {verdict}); 784-30-10 at batch 10: "
          f"{summary['784-30-10']['speedup_2_ranks']:.2f}x")
    write_report(args.output, {
        "benchmark": "mpi_scaling", "quick": args.quick, "machine": machine(),
        "blas_environment": blas_env, "mpiexec": mpiexec, "target_speedup": TARGET,
        "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/mpi_scaling.py"
                   + (" --quick" if args.quick else ""),
        "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
