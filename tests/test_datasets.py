"""Data sets: IDX round trips, malformed and fuzzed files, loading on every backend, named data sets
found on disk or downloaded from a local server (never the internet), and device staging."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import struct
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portamlp.backends import backend_of, get_backend, to_numpy
from portamlp.datasets import (
    DATASETS,
    IDX_TYPES,
    DeviceDataset,
    clear_cache,
    fetch,
    find_files,
    load,
    load_mnist,
    read_idx,
    read_split,
    sources,
    write_idx,
)
from portamlp.datasets import train_moments as _train_moments
from portamlp.errors import DataFormatError

_REAL_DOWNLOAD = fetch.download

STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _random_array(rng, dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def _write_bytes(path: Path, payload: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path


def _header(code: int, dims) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def make_dataset(directory: Path, rng, n_train=12, n_test=6, compress=True, seed_labels=None):
    """Write the four files of a small MNIST-format data set into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if compress else ""
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8) if seed_labels is None else seed_labels
        write_idx(directory / (STEMS[split][0] + ext), images)
        write_idx(directory / (STEMS[split][1] + ext), labels)
        arrays[split] = (images, labels)
    return arrays


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)],
                         ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("code", sorted(IDX_TYPES), ids=lambda c: IDX_TYPES[c].name)
def test_round_trip_every_type_and_rank(tmp_path, rng, code, shape, compress):
    dtype = IDX_TYPES[code].newbyteorder("=")
    a = _random_array(rng, dtype, shape)
    path = tmp_path / "a.idx"
    write_idx(path, a, compress=compress)
    data = path.read_bytes()
    assert (data[:2] == b"\x1f\x8b") == compress
    raw = gzip.decompress(data) if compress else data
    assert raw[:4] == bytes([0, 0, code, len(shape)])
    assert struct.unpack(f">{len(shape)}I", raw[4:4 + 4 * len(shape)]) == shape
    b = read_idx(path)
    assert b.shape == shape and b.dtype == dtype and b.dtype.isnative
    np.testing.assert_array_equal(b, a)


def test_elements_are_big_endian(tmp_path):
    payload = _header(0x0B, (2,)) + b"\x01\x02\xff\xfe"
    a = read_idx(_write_bytes(tmp_path / "s", payload, False))
    assert a.tolist() == [258, -2]
    payload = _header(0x0D, (1,)) + struct.pack(">f", 1.5)
    assert read_idx(_write_bytes(tmp_path / "f.gz", payload, True)).tolist() == [1.5]


def test_gzip_is_recognised_by_content_not_name(tmp_path, rng):
    a = _random_array(rng, np.uint8, (4, 4))
    write_idx(tmp_path / "plain", a, compress=True)
    write_idx(tmp_path / "plain.gz", a, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), a)


def test_zero_length_dimension(tmp_path):
    a = read_idx(_write_bytes(tmp_path / "z", _header(0x08, (0, 28, 28)), False))
    assert a.shape == (0, 28, 28)


def test_sha256_is_checked(tmp_path, rng):
    a = _random_array(rng, np.int32, (5, 3))
    path = tmp_path / "a.gz"
    write_idx(path, a)
    digest = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    np.testing.assert_array_equal(read_idx(path, sha256=digest.upper()), a)
    with pytest.raises(DataFormatError, match="SHA-256.*damaged") as info:
        read_idx(path, sha256="0" * 64)
    assert str(path) in str(info.value)


def test_write_idx_rejects_what_idx_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "a", np.float32(1.0))


# --------------------------------------------------------------------------- malformed files
_U8_3D = _header(0x08, (3, 4, 5))

MALFORMED = {
    # name: (payload, compress, message fragment)
    "truncated data": (_U8_3D + bytes(59), False, "truncated data"),
    "truncated data gz": (_U8_3D + bytes(59), True, "truncated"),
    "wrong magic": (b"\x01\x02\x08\x03" + _U8_3D[4:] + bytes(60), False, "wrong magic number"),
    "wrong magic gz": (b"\x00\x01\x08\x03" + _U8_3D[4:] + bytes(60), True, "wrong magic number"),
    "unknown type code": (b"\x00\x00\x0a\x01" + struct.pack(">I", 3) + bytes(3), False,
                          "unknown IDX type code 0x0a"),
    "unknown type code gz": (b"\x00\x00\xff\x01" + struct.pack(">I", 3) + bytes(3), True,
                             "unknown IDX type code 0xff"),
    "size mismatch": (_U8_3D + bytes(61), False, "dimensions do not match the size"),
    "size mismatch gz": (_U8_3D + bytes(61), True, "dimensions do not match the size"),
    "header only": (_U8_3D, False, "header only"),
    "header only gz": (_U8_3D, True, "header only"),
    "empty file": (b"", False, "empty"),
    "empty gzip stream": (b"", True, "empty"),
    "zero dimensions": (b"\x00\x00\x08\x00", False, "0 dimensions"),
    "truncated header": (_U8_3D[:9], False, "truncated IDX header"),
    "truncated magic gz": (b"\x00\x00", True, "truncated IDX header"),
    "1e9 images in 1 KB": (_header(0x08, (10**9, 28, 28)) + bytes(1000), False,
                           "can hold at most"),
    "1e9 images in 1 KB gz": (_header(0x08, (10**9, 28, 28)) + bytes(1000), True,
                              "can hold at most"),
    "2**32-1 doubles gz": (_header(0x0E, (2**32 - 1, 2**32 - 1)), True, "can hold at most"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_gives_a_clear_error(tmp_path, case):
    payload, compress, fragment = MALFORMED[case]
    path = _write_bytes(tmp_path / "bad-file", payload, compress)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DataFormatError, match=fragment) as info:
            read_idx(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < (1 << 20)  # nothing the size of a claimed 10⁹ images was allocated
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("damage", ["garbage", "cut", "crc"])
def test_bad_gzip_stream(tmp_path, rng, damage):
    good = gzip.compress(_U8_3D + rng.integers(0, 256, 60, dtype=np.uint8).tobytes(), mtime=0)
    if damage == "garbage":
        data = b"\x1f\x8b" + b"this is not deflate data at all" * 3
    elif damage == "cut":
        data = good[: len(good) // 2]
    else:  # a flipped byte of the CRC-32 in the trailer
        data = bytearray(good)
        data[-8] ^= 0xFF
        data = bytes(data)
    path = tmp_path / "bad.gz"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match="gzip|truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    # a missing file is FileNotFoundError, as datasets.load says for a missing data set
    with pytest.raises(FileNotFoundError, match="no such IDX file"):
        read_idx(tmp_path / "nothing")
    with pytest.raises(DataFormatError, match="not a regular file"):
        read_idx(tmp_path)


# --------------------------------------------------------------------------- fuzzing
def _traced_read(path: Path):
    """Read ``path``; return (array or None, peak bytes traced while reading)."""
    tracemalloc.start()
    try:
        try:
            array = read_idx(path)
        except DataFormatError:
            array = None
        return array, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


_SLACK = 512 << 10  # interpreter and gzip module buffers


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.one_of(st.sampled_from(sorted(IDX_TYPES)), st.integers(0, 255)),
       dims=st.lists(st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1)), max_size=6),
       ndim_lie=st.one_of(st.none(), st.integers(0, 255)),
       body=st.binary(max_size=400), magic=st.sampled_from([b"\x00\x00", b"\x00\x01", b"\x1f\x8b"]),
       compress=st.booleans())
def test_fuzz_random_headers(tmp_path, code, dims, ndim_lie, body, magic, compress):
    ndim = len(dims) if ndim_lie is None else ndim_lie
    payload = magic + bytes([code, ndim]) + b"".join(struct.pack(">I", d) for d in dims) + body
    path = _write_bytes(tmp_path / "fuzz", payload, compress)
    array, peak = _traced_read(path)
    could_hold = len(payload)  # the decompressed size, raw or gzip
    assert peak <= 2 * could_hold + _SLACK
    if array is not None:
        assert array.nbytes <= could_hold


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_flips=st.integers(1, 6), cut=st.integers(0, 40),
       extra=st.binary(max_size=8), compress=st.booleans(), in_header=st.booleans(),
       damage_gzip=st.booleans())
def test_fuzz_mutated_files(tmp_path, seed, n_flips, cut, extra, compress, in_header, damage_gzip):
    rng = np.random.default_rng(seed)
    code = int(rng.choice(sorted(IDX_TYPES)))
    a = _random_array(rng, IDX_TYPES[code].newbyteorder("="), (3, 4, 5))
    payload = bytearray(_header(code, a.shape) + a.astype(IDX_TYPES[code]).tobytes())
    data = (bytearray(gzip.compress(bytes(payload), mtime=0)) if compress and damage_gzip
            else payload)
    span = 16 if in_header and not (compress and damage_gzip) else len(data)
    for pos in rng.integers(0, span, size=n_flips):
        data[pos] = int(rng.integers(0, 256))
    data = data[: len(data) - cut] + extra
    if compress and not damage_gzip:
        data = gzip.compress(bytes(data), mtime=0)
    path = tmp_path / "fuzz"
    path.write_bytes(bytes(data))
    array, peak = _traced_read(path)
    could_hold = len(payload) + len(extra) if compress else len(data)
    if compress and damage_gzip:  # a damaged deflate stream: bounded by the ratio DEFLATE allows
        could_hold = max(could_hold, 1100 * len(data))
    assert peak <= 2 * could_hold + _SLACK
    if array is not None:
        assert array.nbytes <= could_hold


# --------------------------------------------------------------------------- splits
def test_images_and_labels_must_agree_on_the_count(tmp_path, rng):
    make_dataset(tmp_path, rng)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="count mismatch.*12 images.*11 labels"):
        read_split(str(tmp_path), "train")


def test_labels_must_lie_in_range(tmp_path, rng):
    make_dataset(tmp_path, rng)
    labels = np.zeros(6, dtype=np.uint8)
    labels[3] = 10
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataFormatError, match=r"label 10 is out of range.*\[0, 9\]") as info:
        read_split(str(tmp_path), "test")
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)
    assert read_split(str(tmp_path), "test", n_classes=11)[1][3] == 10


def test_labels_must_be_one_dimensional(tmp_path, rng):
    make_dataset(tmp_path, rng)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros((6, 1), dtype=np.uint8))
    with pytest.raises(DataFormatError, match="must be 1-D"):
        read_split(str(tmp_path), "test")


def test_split_arrays_are_read_only(tmp_path, rng):
    arrays = make_dataset(tmp_path, rng, compress=False)
    images, labels = read_split(str(tmp_path), "train")
    np.testing.assert_array_equal(images, arrays["train"][0])
    assert not images.flags.writeable and not labels.flags.writeable


def test_a_changed_file_is_read_again(tmp_path, rng):
    make_dataset(tmp_path, rng)
    assert read_split(str(tmp_path), "test")[0].shape[0] == 6
    time.sleep(0.01)
    make_dataset(tmp_path, rng, n_test=7)
    assert read_split(str(tmp_path), "test")[0].shape[0] == 7


# --------------------------------------------------------------------------- embedded MNIST
def test_embedded_mnist_is_verified_once_per_process(monkeypatch):
    calls = []
    real = sources.read_idx

    def spy(path, sha256=None):
        calls.append((Path(path).name, sha256))
        return real(path, sha256=sha256)

    monkeypatch.setattr(sources, "read_idx", spy)
    clear_cache()
    try:
        first = read_split("mnist", "test")
        second = read_split("mnist", "test")
    finally:
        clear_cache()
    assert first[0] is second[0] and first[1] is second[1]
    assert len(calls) == 2 and all(len(digest) == 64 for _, digest in calls)
    assert first[0].shape == (10000, 28, 28) and first[0].dtype == np.uint8


@pytest.mark.parametrize("damage", ["sum", "file"])
def test_damaged_installation_is_reported(tmp_path, monkeypatch, damage):
    fake = tmp_path / "mnist"
    shutil.copytree(Path(str(sources.EMBEDDED_DIR)), fake)
    if damage == "sum":
        sums = (fake / "SHA256SUMS-idx.txt").read_text().replace("ff7bcfd4", "00000000")
        (fake / "SHA256SUMS-idx.txt").write_text(sums)
    else:
        data = (fake / "t10k-labels-idx1-ubyte.gz").read_bytes()
        (fake / "t10k-labels-idx1-ubyte.gz").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(sources, "EMBEDDED_DIR", fake)
    clear_cache()
    try:
        with pytest.raises(DataFormatError, match="installation is damaged"):
            read_split("mnist", "test")
    finally:
        clear_cache()


def test_embedded_files_match_the_published_sums():
    published = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if not (published / "SHA256SUMS-idx.txt").is_file():
        pytest.skip(f"no published sums at {published}")
    assert ((published / "SHA256SUMS-idx.txt").read_text().split()
            == (Path(str(sources.EMBEDDED_DIR)) / "SHA256SUMS-idx.txt").read_text().split())


def test_training_moments_match_the_known_figures():
    mean, std = _train_moments("mnist", None)
    assert mean == pytest.approx(0.1307, abs=1e-4) and std == pytest.approx(0.3081, abs=1e-4)


# --------------------------------------------------------------------------- loading
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_returns_the_requested_namespace_device_and_dtype(backend, dtype):
    x, y = load_mnist("test", backend=backend, dtype=dtype, length=64)
    xp = backend.xp
    assert backend_of(x).name == backend_of(y).name == backend.name
    assert backend.same_device(x) and backend.same_device(y)
    assert x.dtype == getattr(xp, dtype) and y.dtype == xp.int64
    assert tuple(x.shape) == (64, 784) and tuple(y.shape) == (64,)
    images, labels = read_split("mnist", "test")
    np.testing.assert_array_equal(to_numpy(y), labels[:64])
    np.testing.assert_allclose(to_numpy(x), images[:64].reshape(64, -1) / 255.0, rtol=1e-6)


def test_load_unflattened_on_every_backend(backend):
    x, y = load_mnist("test", backend=backend, flatten=False, start=10, length=5)
    assert tuple(x.shape) == (5, 28, 28) and backend.same_device(x)
    np.testing.assert_array_equal(to_numpy(y), read_split("mnist", "test")[1][10:15])


def test_pixel_scalings():
    images = read_split("mnist", "test")[0][:50].reshape(50, -1)
    x255, _ = load_mnist("test", backend="numpy", length=50)
    x256, _ = load_mnist("test", backend="numpy", length=50, scale=256)
    xstd, _ = load_mnist("test", backend="numpy", length=50, scale="standardise", dtype="float64")
    assert x255.max() == 1.0 and x256.max() == np.float32(255 / 256)
    np.testing.assert_allclose(x256, images / 256.0, rtol=1e-6)
    mean, std = _train_moments("mnist", None)
    np.testing.assert_allclose(xstd, (images / 255.0 - mean) / std, rtol=1e-12, atol=1e-12)


def test_standardised_training_set_has_zero_mean_unit_std():
    x, _ = load_mnist("train", backend="numpy", scale="standardize")
    assert abs(x.mean(dtype=np.float64)) < 1e-4
    assert x.std(dtype=np.float64) == pytest.approx(1.0, abs=1e-4)


def test_validation_split_is_the_end_of_the_training_file():
    images, labels = read_split("mnist", "train")
    xv, yv = load_mnist("validation", backend="numpy", validation_length=1000)
    np.testing.assert_array_equal(yv, labels[-1000:])
    np.testing.assert_allclose(xv, images[-1000:].reshape(1000, -1) / 255.0, rtol=1e-6)
    _xt, yt = load_mnist("train", backend="numpy", validation_length=1000, start=58990)
    np.testing.assert_array_equal(yt, labels[58990:59000])
    assert load_mnist("validation", backend="numpy")[1].shape == (10000,)
    assert load_mnist("train", backend="numpy", length=3)[1].shape == (3,)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"split": "val"}, "unknown split 'val'; choose one of"),
    ({"scale": 100}, "scale=100 is not valid"),
    ({"dtype": "int8"}, "unknown dtype 'int8'; choose one of"),
    ({"length": 10_001}, "requested 10001 rows"),
    ({"length": -1}, "length=-1 must be >= 0"),
    ({"validation_length": 70_000, "split": "validation"}, "validation_length=70000 exceeds"),
])
def test_load_rejects_bad_arguments(kwargs, fragment):
    kwargs = {"split": "test", **kwargs}
    with pytest.raises(ValueError, match=fragment):
        load("mnist", backend="numpy", **kwargs)


# --------------------------------------------------------------------------- named data sets
@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No PORTAMLP_DATA, a private user cache and system folder, no proxy for 127.0.0.1."""
    cache, system = tmp_path / "cache", tmp_path / "system"
    monkeypatch.delenv("PORTAMLP_DATA", raising=False)
    monkeypatch.setattr(fetch, "cache_dir", lambda: cache)
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIR", system)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(fetch, "download", _no_network)
    return {"cache": cache, "system": system, "tmp": tmp_path}


def _no_network(*args, **kwargs):
    raise AssertionError("the network was used without download=True")


def test_fashion_mnist_from_a_debian_layout(isolated, rng):
    arrays = make_dataset(isolated["tmp"] / "fashion-mnist", rng)
    x, y = load("fashion-mnist", "train", backend="numpy", root=isolated["tmp"])
    assert x.shape == (12, 784) and y.dtype == np.int64
    np.testing.assert_allclose(x, arrays["train"][0].reshape(12, -1) / 255.0, rtol=1e-6)
    # The same files found in the system folder, as Debian's dataset-fashion-mnist installs them.
    shutil.copytree(isolated["tmp"] / "fashion-mnist", isolated["system"] / "fashion-mnist")
    _xt, yt = load("fashion-mnist", "test", backend="numpy")
    np.testing.assert_array_equal(yt, arrays["test"][1])


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_installed_debian_fashion_mnist():
    x, y = load("fashion-mnist", "test", backend="numpy", root="/usr/share/datasets")
    assert x.shape == (10000, 784) and int(y.min()) == 0 and int(y.max()) == 9


def test_lookup_order(isolated, rng, monkeypatch):
    env = isolated["tmp"] / "env"
    make_dataset(isolated["tmp"] / "root" / "kmnist", rng, n_test=1)
    make_dataset(env / "kmnist", rng, n_test=2)
    make_dataset(isolated["cache"] / "kmnist", rng, n_test=3, compress=False)
    make_dataset(isolated["system"] / "kmnist", rng, n_test=4)
    monkeypatch.setenv("PORTAMLP_DATA", str(env))

    def n_found(**kwargs):
        return read_split("kmnist", "test", **kwargs)[0].shape[0]

    assert n_found(root=isolated["tmp"] / "root") == 1
    assert n_found() == 2
    monkeypatch.delenv("PORTAMLP_DATA")
    assert n_found() == 3
    shutil.rmtree(isolated["cache"])
    assert n_found() == 4
    assert n_found(root=isolated["tmp"] / "root" / "kmnist") == 1  # root itself holds the files


def test_a_folder_in_the_mnist_layout(tmp_path, rng):
    make_dataset(tmp_path / "mine", rng, compress=False)
    x, _y = load(tmp_path / "mine", "test", backend="numpy", flatten=False)
    assert x.shape == (6, 28, 28)
    with pytest.raises(ValueError, match="unknown data set"):
        load(str(tmp_path / "nowhere"), backend="numpy")


def test_not_found_lists_the_places_and_the_ways(isolated):
    with pytest.raises(FileNotFoundError) as info:
        load("fashion-mnist", "test", backend="numpy", root=isolated["tmp"] / "r")
    message = str(info.value)
    for place in (isolated["tmp"] / "r" / "fashion-mnist", isolated["cache"] / "fashion-mnist",
                  isolated["system"] / "fashion-mnist"):
        assert str(place) in message
    for way in ("root=", "PORTAMLP_DATA", "download=True",
                "apt-get install dataset-fashion-mnist"):
        assert way in message
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        find_files("kmnist", "train")
    assert "apt-get" not in str(info.value)


# --------------------------------------------------------------------------- downloads
class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields (base URL, log)."""
    www = tmp_path / "www"
    www.mkdir()
    requests = []

    class Handler(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www, requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _publish(www: Path, rng, monkeypatch, mirrors):
    """Serve a generated data set and pin its hashes (SHA-256 for images, MD5 for labels)."""
    arrays = make_dataset(www, rng)
    hashes = {}
    for path in www.glob("*.gz"):
        data = path.read_bytes()
        hashes[path.name] = ("md5:" + hashlib.md5(data).hexdigest() if "labels" in path.name
                             else "sha256:" + hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(DATASETS["fashion-mnist"], "mirrors", mirrors)
    monkeypatch.setitem(DATASETS["fashion-mnist"], "hashes", hashes)
    return arrays


def _cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def test_download_fetches_verifies_and_caches(isolated, server, rng, monkeypatch):
    monkeypatch.setattr(fetch, "download", _REAL_DOWNLOAD)
    base, www, requests = server
    arrays = _publish(www, rng, monkeypatch, [base + "missing/", base])  # first mirror: 404
    with pytest.raises(FileNotFoundError):
        load("fashion-mnist", "train", backend="numpy")
    assert requests == []  # nothing is fetched without download=True
    x, y = load("fashion-mnist", "train", backend="numpy", download=True)
    np.testing.assert_array_equal(y, arrays["train"][1])
    np.testing.assert_allclose(x, arrays["train"][0].reshape(12, -1) / 255.0, rtol=1e-6)
    cached = isolated["cache"] / "fashion-mnist"
    assert [p.name for p in _cached_files(isolated["cache"])] == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    for p in _cached_files(isolated["cache"]):
        assert p.read_bytes() == (www / p.name).read_bytes()
    # Next time the cache answers, even with the server gone.
    monkeypatch.setitem(DATASETS["fashion-mnist"], "mirrors", ["http://127.0.0.1:9/"])
    n_requests = len(requests)
    load("fashion-mnist", "train", backend="numpy", download=True)
    assert len(requests) == n_requests and cached.is_dir()


@pytest.mark.parametrize("damage", ["corrupted", "truncated", "not idx"])
def test_bad_download_is_rejected_and_never_cached(isolated, server, rng, monkeypatch, damage):
    monkeypatch.setattr(fetch, "download", _REAL_DOWNLOAD)
    base, www, _ = server
    _publish(www, rng, monkeypatch, [base])
    target = www / "t10k-images-idx3-ubyte.gz"
    data = target.read_bytes()
    if damage == "corrupted":
        data = data[:100] + bytes([data[100] ^ 0x55]) + data[101:]
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # served as pinned, but not an IDX file: the hash is right, the content is not
        data = gzip.compress(b"<html>not found</html>", mtime=0)
        monkeypatch.setitem(DATASETS["fashion-mnist"]["hashes"], target.name,
                            "sha256:" + hashlib.sha256(data).hexdigest())
    target.write_bytes(data)
    with pytest.raises(DataFormatError, match="(?s)corrupt or truncated.*nothing was kept"):
        load("fashion-mnist", "test", backend="numpy", download=True)
    assert "t10k-images-idx3-ubyte.gz" not in [p.name for p in _cached_files(isolated["cache"])]
    assert not list((isolated["cache"] / "fashion-mnist").glob(".download-*"))


def test_unreachable_source(isolated, server, rng, monkeypatch):
    monkeypatch.setattr(fetch, "download", _REAL_DOWNLOAD)
    base, www, _ = server
    _publish(www, rng, monkeypatch, [base + "nowhere/"])
    with pytest.raises(OSError, match="(?s)could not download.*nowhere") as info:
        load("fashion-mnist", "test", backend="numpy", download=True)
    assert not isinstance(info.value, FileNotFoundError)
    assert _cached_files(isolated["cache"]) == []


def test_download_refuses_unpinned_files(isolated, server, rng, monkeypatch):
    monkeypatch.setattr(fetch, "download", _REAL_DOWNLOAD)
    base, www, requests = server
    _publish(www, rng, monkeypatch, [base])
    monkeypatch.setitem(DATASETS["fashion-mnist"], "hashes", {})
    with pytest.raises(ValueError, match="no pinned hash"):
        load("fashion-mnist", "test", backend="numpy", download=True)
    assert requests == [] and _cached_files(isolated["cache"]) == []


def test_official_sources_are_pinned():
    for name in ("fashion-mnist", "kmnist"):
        entry = DATASETS[name]
        assert entry["mirrors"] and all(u.endswith("/") for u in entry["mirrors"])
        assert sorted(entry["hashes"]) == sorted(s + ".gz" for p in STEMS.values() for s in p)
        for digest in entry["hashes"].values():
            algorithm, _, hexdigest = digest.partition(":")
            assert len(hexdigest) == {"md5": 32, "sha256": 64}[algorithm]



# --------------------------------------------------------------------------- device staging
def test_device_dataset_batches(backend):
    n, k = 10, 3
    host_x = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    host_y = np.arange(n) % k
    data = DeviceDataset(backend.asarray(host_x), backend.asarray(host_y.astype(np.int64)), k,
                         backend)
    assert len(data) == n and backend.same_device(data.targets)
    np.testing.assert_array_equal(to_numpy(data.targets), np.eye(k, dtype=np.float32)[host_y])
    plain = list(data.batches(4))
    assert [int(b[0].shape[0]) for b in plain] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([to_numpy(b[0]) for b in plain]), host_x)
    shuffled = list(data.batches(4, np.random.default_rng(7)))
    order = np.random.default_rng(7).permutation(n)
    for xb, tb, wb in shuffled:
        assert backend.same_device(xb) and backend.same_device(tb) and wb is None
    np.testing.assert_array_equal(np.concatenate([to_numpy(b[0]) for b in shuffled]),
                                  host_x[order])
    np.testing.assert_array_equal(np.concatenate([to_numpy(b[1]) for b in shuffled]),
                                  np.eye(k, dtype=np.float32)[host_y[order]])
    with pytest.raises(ValueError, match="batch_size=0"):
        next(data.batches(0))


def test_device_dataset_from_split(backend):
    data = DeviceDataset.from_split("mnist", "test", backend=backend, length=100,
                                    dtype="float64")
    assert len(data) == 100 and data.x.dtype == backend.xp.float64
    assert tuple(data.targets.shape) == (100, 10) and backend.same_device(data.x)


def test_device_dataset_checks_its_inputs():
    be = get_backend("numpy")
    with pytest.raises(ValueError, match="must agree"):
        DeviceDataset(np.zeros((3, 2), np.float32), np.zeros(2, np.int64), 2, be)
    with pytest.raises(ValueError, match="n_classes=0"):
        DeviceDataset(np.zeros((3, 2), np.float32), np.zeros(3, np.int64), 0, be)
