"""Safe extraction of downloaded archives (tar, optionally compressed, and zip members).

An archive is checked as a whole before anything is written: a member with an absolute
path, a ``..`` component, a link that points outside the destination, or a device / FIFO
entry makes the whole extraction fail with a CorruptFileError that names the archive and
the member. Files land in the destination by atomic renames, so an interrupted
extraction never leaves a half-written file under its final name.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import CorruptFileError

_CHUNK = 1 << 20


def check_member_name(name: str) -> str | None:
    """Why a member name is unsafe to extract, or None when it stays inside the destination."""
    if not name or "\0" in name:
        return "an empty name"
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or \
            (len(name) > 1 and name[0].isalpha() and name[1] == ":"):  # POSIX root or drive
        return "an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a '..' component"
    return None


def _check_tar_member(member: tarfile.TarInfo) -> str | None:
    why = check_member_name(member.name)
    if why:
        return why
    if member.issym() or member.islnk():
        target = member.linkname
        if not target or target.startswith(("/", "\\")) or PurePosixPath(target).is_absolute():
            return f"a link to the absolute path {target!r}"
        # a symlink resolves from its own folder, a hard link from the archive's root
        base = posixpath.dirname(member.name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
        if resolved == ".." or resolved.startswith("../"):
            return f"a link to {target!r}, outside the destination"
        return None
    if not (member.isfile() or member.isdir()):
        return "a device, FIFO or other special file"
    return None


def safe_extract(archive: str | Path, dest: str | Path,
                 members: list[str] | None = None) -> list[Path]:
    """Extracts a tar archive (``.tar``, ``.tar.gz``, ...) into ``dest``; returns the files.

    ``members`` restricts extraction to those names (default: every member). Every member is
    checked first; one unsafe member refuses the whole archive, naming it. Files are written
    to a temporary folder inside ``dest`` and moved into place when all were extracted.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            infos = tar.getmembers()
            links = {posixpath.normpath(i.name) for i in infos if i.issym() or i.islnk()}
            for info in infos:
                why = _check_tar_member(info)
                if why is None and links:
                    parents = PurePosixPath(posixpath.normpath(info.name)).parents
                    through = [str(p) for p in parents if str(p) in links]
                    if through:  # writing through a link could land outside
                        why = f"a path through the link {through[0]!r}"
                if why:
                    raise CorruptFileError(
                        f"{archive}: refusing to extract member {info.name!r}: it has {why}. "
                        f"The archive is damaged or not the published file; delete it and "
                        f"fetch it again.")
            wanted = infos if members is None else _select(archive, infos, members)
            dest.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
            try:
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=wanted, **kwargs)
                return _move_into(tmp, dest, [i.name for i in wanted if not i.isdir()])
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise CorruptFileError(f"{archive}: damaged or truncated archive ({e}); delete it and "
                               f"fetch it again") from e


def _select(archive: Path, infos: list[tarfile.TarInfo], members: list[str]):
    by_name = {posixpath.normpath(i.name): i for i in infos}
    missing = [m for m in members if posixpath.normpath(m) not in by_name]
    if missing:
        raise CorruptFileError(f"{archive}: the archive lacks {', '.join(missing)}; it is not "
                               f"the expected file")
    return [by_name[posixpath.normpath(m)] for m in members]


def _move_into(tmp: Path, dest: Path, names: list[str]) -> list[Path]:
    out = []
    for name in names:
        target = dest / posixpath.normpath(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / posixpath.normpath(name), target)
        out.append(target)
    return out


def extract_zip_members(archive: str | Path, members: dict[str, Path]) -> list[Path]:
    """Writes the zip members named by the keys of ``members`` to the paths given as values.

    Only the named members are read, and each is written to a path the caller chose, so a
    hostile member name cannot place a file anywhere. Each file is written atomically.
    """
    archive = Path(archive)
    out = []
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            missing = [m for m in members if m not in names]
            if missing:
                raise CorruptFileError(f"{archive}: the archive lacks {', '.join(missing)}; it "
                                       f"is not the expected file")
            for member, target in members.items():
                target = Path(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                           suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as f, zf.open(member) as src:
                        shutil.copyfileobj(src, f, _CHUNK)  # the CRC is checked at its end
                    os.replace(tmp, target)
                finally:
                    Path(tmp).unlink(missing_ok=True)
                out.append(target)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise CorruptFileError(f"{archive}: damaged or truncated zip archive ({e}); delete it "
                               f"and fetch it again") from e
    return out
