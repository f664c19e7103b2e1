"""Checkpoints: everything a run needs to continue exactly, written so that a crash never
leaves a half-written one behind.

A checkpoint is two files in the run's ``checkpoints/`` folder:

* ``ckpt-<step>.npz``: the arrays (parameters ``param/<name>``, optimizer state
  ``optim/<key>``, and whatever else the task and the callbacks save; a callback's copy of
  the parameters that equals them, the best validation's at the epoch that set it, is
  stored once and named in the manifest's ``same_as``), NumPy's npz without pickles;
* ``ckpt-<step>.json``: the manifest: format, step, epoch, batch within the epoch, the config
  hash, the dlrun version, the SHA-256 of the npz, and the JSON state (RNG states, schedule,
  task counters, the MLflow run id), signed: ``signature`` is the SHA-256 of the rest of the
  manifest as canonical JSON.

Each file is written to a temporary name in the same folder, fsynced and renamed; the
manifest is renamed last, so a checkpoint exists exactly when its manifest does, and loading
checks the npz against the manifest's SHA-256 before reading a single array, then the
manifest against its signature (an edited step, epoch, run id or array file is refused) and
that its name, its step and its npz agree. Older checkpoints beyond ``keep`` are removed only
after the new one is complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dlrun.engine.files import write_atomic as _write_atomic

FORMAT = "dlrun-checkpoint"
VERSION = 2  # 2: the manifest is signed (version 1 manifests carry no signature)
_NAME = re.compile(r"ckpt-(\d{8,})\.json$")
SAME_AS = "same_as"  # the manifest's {array: the parameter array it equals, stored once}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read (the message names the file and the fix)."""


@dataclass
class Checkpoint:
    """What a run saves: where it is, its arrays and its JSON state."""

    step: int                       # optimizer steps done
    epoch: int                      # the epoch in progress (1-based)
    batch: int                      # batches of that epoch done (0: the epoch starts)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    source: Path | None = None      # the manifest it was read from

    @property
    def run_dir(self) -> Path | None:
        """The run folder of a checkpoint read from ``<run>/checkpoints/``."""
        return None if self.source is None else self.source.parent.parent


def config_hash(text: str) -> str:
    """A short, stable hash of a config (its YAML text)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- random states ---------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's global and the engine's random generators (JSON)."""
    from dlrun.engine import backend

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    engines = {}
    for ctx, gen in backend._generators.items():
        if ctx.device_type != "cpu":
            continue  # CuPy's generators expose no portable state: GPU streams restart seeded
        engines[f"{ctx.device_type}:{ctx.device_id}"] = gen.bit_generator.state
    return {"python": [version, list(internal), gauss],
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "engine": engines, "engine_seed": backend._seed_value}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    from dlrun.engine import backend

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    backend._seed_value = state.get("engine_seed")
    backend._generators.clear()
    for key, gen_state in state.get("engine", {}).items():
        kind, index = key.split(":")
        ctx = backend.Context(kind, int(index))
        gen = backend._make_generator(ctx, 0)
        gen.bit_generator.state = gen_state
        backend._generators[ctx] = gen


# --- files -------------------------------------------------------------------------------
def write_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """``write(file)`` into a temporary file beside ``path``, fsync, then rename over it; the
    file gets the user's umask (not mkstemp's 0600), a failed write leaves no temporary file
    and names ``path`` (``dlrun.engine.files.write_atomic``)."""
    _write_atomic(path, write)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def manifest_signature(spec: Mapping[str, Any]) -> str:
    """The SHA-256 of a manifest without its ``signature``, as canonical JSON (sorted keys,
    no spaces): any edit of a field after the checkpoint was written changes it."""
    body = {k: v for k, v in spec.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CheckpointStore:
    """The checkpoints of one run, in ``folder``; the newest ``keep`` are kept (0: the newest
    while the run goes on, none once it finished)."""

    def __init__(self, folder: str | Path, keep: int = 2):
        if keep < 0:
            raise ValueError(f"trainer.keep_checkpoints must be >= 0, got {keep}")
        self.folder = Path(folder)
        self.keep = keep

    def save(self, ckpt: Checkpoint) -> Path:
        """Write ``ckpt``; returns its manifest. On failure the earlier checkpoints stay."""
        import dlrun

        stem = f"ckpt-{ckpt.step:08d}"
        arrays_path, manifest_path = self.folder / f"{stem}.npz", self.folder / f"{stem}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(arrays_path, lambda f: np.savez(f, **ckpt.arrays))
            manifest = {
                "format": FORMAT, "version": VERSION, "step": ckpt.step, "epoch": ckpt.epoch,
                "batch": ckpt.batch, "config_hash": ckpt.config_hash,
                "dlrun_version": dlrun.__version__, "arrays": arrays_path.name,
                "sha256": _sha256(arrays_path), "state": ckpt.state,
            }
            manifest["signature"] = manifest_signature(manifest)
            text = json.dumps(manifest, indent=1).encode()
            write_atomic(manifest_path, lambda f: f.write(text))
            _fsync_dir(self.folder)
        except OSError as e:
            kept = self.latest()
            raise CheckpointError(
                f"could not write checkpoint {manifest_path}: {e.strerror or e}; "
                + (f"the previous checkpoint {kept} is intact" if kept else "no earlier checkpoint exists")
                + ". Free disk space or fix the folder's permissions.") from None
        self._prune()
        return manifest_path

    def manifests(self) -> list[Path]:
        """Complete checkpoints (those with a manifest), oldest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        found = self.manifests()
        return found[-1] if found else None

    def finished(self) -> None:
        """The run finished: with ``keep=0`` its checkpoints are deleted."""
        if self.keep == 0:
            self._prune(0)

    def _prune(self, keep: int | None = None) -> None:
        found = self.manifests()
        for manifest in found[:max(0, len(found) - (max(self.keep, 1) if keep is None else keep))]:
            try:
                spec = json.loads(manifest.read_text())
                arrays = self.folder / Path(str(spec.get("arrays", ""))).name
            except (OSError, ValueError):
                arrays = None
            manifest.unlink(missing_ok=True)  # first the manifest: the checkpoint is gone
            if arrays is not None and arrays.suffix == ".npz":
                arrays.unlink(missing_ok=True)


def _earlier(path: Path) -> str:
    """How to go on from the checkpoint before ``path`` in its folder (named), if any."""
    earlier = [m for m in CheckpointStore(path.parent).manifests() if m.name < path.name]
    if not earlier:
        return "no earlier checkpoint is left in its folder: start the run again"
    return f"resume from the one before it: dlrun resume={earlier[-1]}"


def kept_checkpoints(keep: int | None, trial: bool) -> int:
    """``trainer.keep_checkpoints``; null: 2 for a run, 0 for a sweep's ``trial``."""
    return int(keep) if keep is not None else 0 if trial else 2


def load_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint of a manifest (``ckpt-*.json``), a checkpoints folder or a run folder
    (its newest checkpoint): the npz verified against the manifest's SHA-256 before anything
    is read, the manifest against its signature, its name and its npz against its step."""
    path = Path(path).expanduser()
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        latest = CheckpointStore(folder).latest()
        if latest is None:
            raise CheckpointError(f"{path} holds no checkpoint (no checkpoints/ckpt-*.json); "
                                  "give a run folder that wrote checkpoints, or a ckpt-*.json file")
        path = latest
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint manifest {path}: {e}") from None
    if isinstance(spec, dict) and spec.get("format") == FORMAT and spec.get("version") == 1:
        raise CheckpointError(f"{path} was written by an earlier dlrun (checkpoint version 1, "
                              "unsigned): it cannot be verified; start the run again")
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise CheckpointError(f"{path} is not a dlrun checkpoint manifest (format {FORMAT} "
                              f"version {VERSION})")
    arrays_path = path.parent / Path(str(spec.get("arrays", ""))).name  # never outside the folder
    if not arrays_path.is_file():
        raise CheckpointError(f"{path}: its array file {arrays_path.name} is missing")
    if _sha256(arrays_path) != spec.get("sha256"):
        raise CheckpointError(f"{arrays_path} does not match the SHA-256 in {path.name}: the "
                              f"checkpoint is corrupt or truncated; {_earlier(path)}")
    try:
        with np.load(arrays_path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read checkpoint {arrays_path}: {e}") from None
    _check_manifest(path, spec)
    for name, twin in dict(spec.get("state", {}).get(SAME_AS) or {}).items():
        if twin not in arrays:
            raise CheckpointError(f"{path}: {name} is stored as {twin}, which {arrays_path.name} "
                                  "lacks")
        arrays[name] = arrays[twin]
    return Checkpoint(int(spec["step"]), int(spec["epoch"]), int(spec["batch"]), arrays,
                      dict(spec.get("state", {})), str(spec.get("config_hash", "")), path)


def _check_manifest(path: Path, spec: Mapping[str, Any]) -> None:
    """The manifest at ``path`` is as it was written (its signature), and its file name, its
    step and the npz it names agree (``ckpt-<step>.json`` with ``ckpt-<step>.npz``)."""
    if spec.get("signature") != manifest_signature(spec):
        raise CheckpointError(
            f"{path} was changed after it was written (its signature does not match its "
            "contents: an edited step, epoch, MLflow run id or array file?); resume from "
            "another checkpoint of the run, or start the run again")
    try:
        step, epoch, batch = int(spec["step"]), int(spec["epoch"]), int(spec["batch"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} has no valid step, epoch and batch") from None
    named = _NAME.match(path.name)
    if named is None or int(named.group(1)) != step:
        raise CheckpointError(f"{path} holds the checkpoint of step {step}, which is "
                              f"ckpt-{step:08d}.json: the file was renamed or copied over another")
    if spec.get("arrays") != f"ckpt-{step:08d}.npz":
        raise CheckpointError(f"{path} (step {step}) names the array file {spec.get('arrays')}, "
                              f"not its own ckpt-{step:08d}.npz")
    if step < 0 or epoch < 1 or batch < 0:
        raise CheckpointError(f"{path}: step {step}, epoch {epoch}, batch {batch} is no position "
                              "in a run")


def _equal(a: np.ndarray, b: np.ndarray | None) -> bool:
    """Whether ``b`` is an array of ``a``'s dtype, shape and values (bit for bit)."""
    return b is not None and a.dtype == b.dtype and a.shape == b.shape and bool(
        np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _optim_prefix(name: str) -> str:
    """Where a trainer's state goes in a checkpoint: ``optim/`` (the run's), ``optim_<name>/``."""
    return f"optim_{name}/" if name else "optim/"


# --- a run's checkpoints ---------------------------------------------------------------------
class RunCheckpoints:
    """When a run writes checkpoints, what goes into them, and restoring one.

    A checkpoint holds the parameters (``param/<name>``), the trainer's optimizer and schedule
    state (``optim/<key>``), every RNG state, the MLflow run id and the task's own counters.
    """

    def __init__(self, store: CheckpointStore, every: int, net: Any, config_hash: str,
                 run_id: Callable[[], str | None], flush: Callable[[], None] = lambda: None,
                 world: Any = None):
        if every < 0:
            raise ValueError(f"trainer.checkpoint_every must be >= 0 (0: at epoch ends only), got {every}")
        self.store, self.every, self.net = store, every, net
        self.trainers: Mapping[str, Any] = {}  # the task's, by name ("": the run's); set by the loop
        self.config_hash, self.run_id = config_hash, run_id
        self.flush = flush  # the tracker's: metrics up to the checkpoint are stored first
        # a data-parallel job's workers hold the same parameters and optimizer state; their
        # random streams differ (their batches differ in size), so rank 0 writes all of them
        self.world = world
        self.last: Path | None = store.latest()

    def due(self, step: int) -> bool:
        """A mid-epoch checkpoint is due after ``step``."""
        return self.every > 0 and step % self.every == 0

    def save(self, epoch: int, batch: int, step: int, state: Mapping[str, Any],
             task_arrays: Mapping[str, np.ndarray] | None = None,
             arrays: Mapping[str, np.ndarray] | None = None) -> Path:
        """Checkpoint the run at ``batch`` batches into ``epoch`` after ``step`` steps, with the
        loop's and the task's ``state`` (JSON), the task's arrays and more arrays under their
        own names (the callbacks', ``cb/<name>/...``), on a data-parallel job's rank 0 (the
        other ranks write nothing)."""
        workers = 1 if self.world is None else self.world.size
        rngs = [rng_state()] if workers == 1 else self.world.allgather(rng_state())
        if workers > 1 and not self.world.is_root:
            return self.last
        self.flush()
        params = {f"param/{n}": p.data().asnumpy() for n, p in self.net.collect_params().items()}
        # the callbacks' copies of the parameters (the best validation's) that are the
        # parameters themselves are stored once: the manifest names the array they are
        same = {k: twin for k, v in (arrays or {}).items()
                if _equal(v, params.get(twin := "param/" + k.rsplit("/", 1)[-1]))}
        arrays = {**params, **{k: v for k, v in (arrays or {}).items() if k not in same}}
        for name, trainer in self.trainers.items():
            arrays.update({f"{_optim_prefix(name)}{k}": v for k, v in trainer.state_dict().items()})
        arrays.update({f"task/{k}": v for k, v in (task_arrays or {}).items()})
        state = {**state, "rng": rngs[0], "mlflow_run_id": self.run_id(), "workers": workers,
                 "rng_of_workers": rngs[1:], SAME_AS: same}
        self.last = self.store.save(Checkpoint(step, epoch, batch, arrays, state, self.config_hash))
        return self.last

    def restore(self, ckpt: Checkpoint) -> None:
        """Parameters, optimizer state and RNG states of ``ckpt`` (parameters must exist)."""
        params = self.net.collect_params()
        missing = [n for n in params if f"param/{n}" not in ckpt.arrays]
        if missing:
            raise CheckpointError(f"the checkpoint lacks parameters {', '.join(missing[:5])}: it "
                                  "was written by another model")
        for name, p in params.items():
            p.set_data(ckpt.arrays[f"param/{name}"])
        for name, trainer in self.trainers.items():
            prefix = _optim_prefix(name)
            trainer.load_state_dict({k[len(prefix):]: v for k, v in ckpt.arrays.items()
                                     if k.startswith(prefix)})
        rank = 0 if self.world is None else self.world.rank
        others = ckpt.state.get("rng_of_workers", [])
        # a worker the checkpoint has no stream of (a job resumed with more workers) takes rank 0's
        set_rng_state(others[rank - 1] if 0 < rank <= len(others) else ckpt.state["rng"])
