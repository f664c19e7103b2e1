"""Local data files, downloaded from their mirrors with SHA-256 verification when missing."""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import ChecksumError, DatasetNotFoundError

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A data file: its name, its published SHA-256 and the URLs to try, in order."""

    filename: str
    sha256: str
    urls: tuple[str, ...]


def remote_files(names: tuple[str, ...], sha256: dict[str, str], mirrors: list[str]) -> list[RemoteFile]:
    """Each named file with its checksum, fetched from every mirror in order."""
    return [RemoteFile(name, sha256[name], tuple(m + name for m in mirrors)) for name in names]


def default_root() -> Path:
    """The data root: ``$DLRUN_DATA`` if set, else ``~/.cache/dlrun``."""
    return Path(os.environ.get("DLRUN_DATA") or "~/.cache/dlrun").expanduser()


def hash_of(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest (``algorithm``: any of hashlib's) of a file's bytes."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hash_of(path, "sha256")


def sha1_hash(path: str | os.PathLike) -> str:
    """The hex SHA-1 of a file (Gluon's ``utils.sha1_hash``)."""
    return hash_of(Path(path), "sha1")


def check_sha1(path: str | os.PathLike, expected: str) -> bool:
    """Whether the file's SHA-1 is ``expected`` (Gluon's ``utils.check_sha1``)."""
    return sha1_hash(path) == expected


def download(url: str, path: str | os.PathLike | None = None, overwrite: bool = False,
             sha1_hash: str | None = None, retries: int = 5, verify_ssl: bool = True) -> str:
    """Gluon's ``utils.download``: ``url`` saved to ``path`` (a folder or a file name; the
    URL's last part in the working folder by default), atomically, tried ``retries`` times;
    with ``sha1_hash`` a file already there with that SHA-1 is kept and a download of
    other bytes is refused. Returns the file name."""
    target = Path(path or url.split("/")[-1]).expanduser()
    if target.is_dir():
        target = target / url.split("/")[-1]
    if target.exists() and not overwrite and (sha1_hash is None or check_sha1(target, sha1_hash)):
        return str(target)
    errors = []
    for _ in range(max(int(retries), 1)):
        try:
            _download_from(url, target, sha1_hash, "sha1")
            return str(target)
        except (OSError, http.client.HTTPException, ValueError) as e:
            errors.append(str(e))
    raise DatasetNotFoundError(f"cannot download {url} to {target} after {retries} tries: "
                               f"{errors[-1]}; check the URL and the network, or put the file "
                               "there by hand")


def fetch(root: Path, filename: str, urls: list[str], sha256: str) -> Path:
    """``root/filename``, verified against ``sha256`` and downloaded from ``urls`` if missing."""
    return fetch_all(root, [RemoteFile(filename, sha256, tuple(urls))])[0]


def fetch_all(root: Path, files: list[RemoteFile]) -> list[Path]:
    """The paths of ``files`` under ``root``, each verified and downloaded if missing.

    Raises one DatasetNotFoundError listing every file no mirror could provide, and a
    ChecksumError for a local file whose SHA-256 is wrong.
    """
    root = Path(root).expanduser()
    paths, missing = [], []
    for file in files:
        path = root / file.filename
        if path.exists():
            _verify_local(path, file.sha256)
        else:
            failures = _download(file, path)
            if failures:
                missing.append((file, failures))
        paths.append(path)
    if missing:
        raise DatasetNotFoundError(_missing_message(root, missing))
    return paths


def _verify_local(path: Path, sha256: str) -> None:
    actual = sha256_of(path)
    if actual != sha256:
        raise ChecksumError(
            f"{path} has SHA-256 {actual}, expected {sha256}: it is damaged or a different "
            f"file. Delete it and run again to download it afresh.")


def _download(file: RemoteFile, path: Path) -> list[str]:
    """Tries the mirrors in order; returns why each one failed, nothing once one succeeded."""
    failures = []
    for url in file.urls:
        try:
            _download_from(url, path, file.sha256)
            return []
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append(f"{url}: {e}")
    return failures


def _download_from(url: str, path: Path, digest: str | None, algorithm: str = "sha256") -> None:
    """Writes ``url`` to ``path`` atomically, only if its hash (``algorithm``) is ``digest``
    (any bytes when ``digest`` is None)."""
    log.info("downloading %s to %s", url, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = hash_of(Path(tmp), algorithm)
        if digest is not None and actual != digest:
            label = {"sha256": "SHA-256", "sha1": "SHA-1"}.get(algorithm, algorithm)
            raise ChecksumError(f"downloaded data has {label} {actual}, expected {digest}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _missing_message(root: Path, missing: list[tuple[RemoteFile, list[str]]]) -> str:
    lines = [f"Dataset files missing from {root} and no mirror could provide them:"]
    for file, failures in missing:
        lines.append(f"  {file.filename}  sha256 {file.sha256}")
        lines += [f"    tried {failure}" for failure in failures]
    lines.append(
        f"Download them by hand into {root} (check them with `sha256sum`), or point dlrun at a "
        f"data root that holds them with dataset.root=PATH or the DLRUN_DATA environment "
        f"variable (default ~/.cache/dlrun).")
    return "\n".join(lines)
