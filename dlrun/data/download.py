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


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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


def _download_from(url: str, path: Path, sha256: str) -> None:
    """Writes ``url`` to ``path`` atomically, only if its SHA-256 is ``sha256``."""
    log.info("downloading %s to %s", url, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = sha256_of(Path(tmp))
        if actual != sha256:
            raise ChecksumError(f"downloaded data has SHA-256 {actual}, expected {sha256}")
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
