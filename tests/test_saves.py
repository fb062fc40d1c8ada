"""Saves that can't collide or vanish: an atomic no-overwrite save, links taken for files, a
failing write that names its path, a save path checked before training, and a trained network
kept when its final save fails."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run

import portamlp
from portamlp.files import models
from portamlp.files.writing import check_save_path, check_writable_folder


def _save_at_once(path, seed, barrier, results):
    net = portamlp.Network.initialize((784, 16, 10), seed=seed, backend="numpy")
    barrier.wait()
    try:
        net.save(path)
        results.put((seed, "saved"))
    except FileExistsError:
        results.put((seed, "exists"))


def test_two_processes_saving_one_path_one_wins_and_the_other_is_told(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(10):
        path = tmp_path / f"net{round_}.safetensors"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_save_at_once, args=(path, s, barrier, results))
                 for s in (0, 1)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        outcome = dict(results.get(timeout=5) for _ in procs)
        assert sorted(outcome.values()) == ["exists", "saved"], outcome
        winner = [s for s, o in outcome.items() if o == "saved"][0]
        expected = portamlp.Network.initialize((784, 16, 10), seed=winner, backend="numpy")
        np.testing.assert_array_equal(portamlp.load(path).weights[0], expected.weights[0])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            f"net{r}.safetensors" for r in range(round_ + 1))  # no temporary file left


def test_a_dangling_link_is_something_at_the_path(tmp_path):
    net = portamlp.Network.initialize((4, 3), seed=0)
    link = tmp_path / "net.json"
    os.symlink(tmp_path / "nowhere.json", link)
    with pytest.raises(FileExistsError, match="net.json already exists"):
        net.save(link)
    with pytest.raises(FileExistsError):
        check_save_path(link)
    net.save(link, overwrite=True)  # the link itself is replaced by the file
    assert not link.is_symlink() and portamlp.load(link).layers == (4, 3)
    assert not (tmp_path / "nowhere.json").exists()


def test_a_failing_write_names_its_path_and_leaves_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write .*net.json: No space left on device") \
            as info:
        portamlp.Network.initialize((4, 3), seed=0).save(tmp_path / "net.json")
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_save_path_that_cannot_be_written_is_found_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile is a file, not a folder"):
        check_save_path(tmp_path / "afile" / "x.json")
    if Path("/proc/self").is_dir():
        with pytest.raises(OSError, match="cannot write in /proc"):
            check_save_path("/proc/x.json")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="cannot write in .*ro"):
            check_writable_folder(ro)
    # the command line: refused before training, in its own words, exit 2
    proc = run("train", "--save", str(tmp_path / "afile" / "x.json"), cwd=tmp_path,
               check=False)
    assert proc.returncode == 2 and "afile is a file, not a folder" in proc.stderr
    assert "epoch" not in proc.stdout


def test_a_failed_final_save_keeps_the_network_and_says_where(tmp_path, monkeypatch):
    target = tmp_path / "full" / "net.json"
    real = models.atomic_write_bytes

    def full_disk(path, data, **kwargs):
        if Path(path) == target:
            raise OSError(errno.ENOSPC, f"cannot write {path}: No space left on device")
        return real(path, data, **kwargs)

    monkeypatch.setattr(models, "atomic_write_bytes", full_disk)
    proc = run("train", "--epochs", "1", "--train-length", "200", "--validation-length", "0",
               "--test-length", "50", "--batch-size", "20", "--save", str(target), cwd=tmp_path,
               check=False)
    assert proc.returncode == 1
    assert f"could not save the network to {target}" in proc.stderr
    assert "No space left on device" in proc.stderr
    rescued = sorted((tmp_path / "runs").glob("rescued-net-*.json"))
    assert len(rescued) == 2  # the network and its run record
    model = [p for p in rescued if not p.name.endswith(".run.json")][0]
    assert f"it is saved to runs/{model.name} instead" in proc.stderr
    assert portamlp.load(model).layers == (784, 30, 10)
    assert json.loads(model.with_suffix(".run.json").read_text())["history"]
