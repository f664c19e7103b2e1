"""Relaunch ``dlrun`` as an MPI job: ``distributed.workers=N`` becomes ``mpiexec -n N dlrun ...``.

The launching process waits for the job, passes its output through, forwards Ctrl-C/SIGTERM
to it, and when a rank dies it names that rank (MPI's launcher reports only a PID: every
rank records its PID in ``<run>/.ranks/``). mpiexec is looked up beside the Python running
dlrun first (the PyPI ``mpich`` package puts it in the virtualenv's ``bin/``), then on PATH.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Sequence

from .world import DistributedError, World

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RANKS_DIR = ".ranks"  # in the run folder: one file per rank, "<pid> <host>"

# the banner MPICH's mpiexec prints when a process of the job ends abnormally
_BANNER = re.compile(r"^(=+|=\s.*|YOUR APPLICATION TERMINATED.*|This typically refers to a problem.*"
                     r"|Please see the FAQ page.*)$")
_PID = re.compile(r"PID (\d+) RUNNING AT (\S+)")
_EXIT = re.compile(r"EXIT CODE: (\d+)")
_KILLED = re.compile(r"EXIT STRING: (.+)")


class JobStopped(KeyboardInterrupt):
    """The job stopped on Ctrl-C/SIGTERM; its rank 0 has said where it stopped."""


def find_mpiexec(configured: str | None = None) -> str:
    """The mpiexec to launch with: ``configured`` (a path, or a name on PATH: ``mpirun``,
    ``srun``), else the virtualenv's, else PATH's."""
    candidates = ([configured if "/" in configured else shutil.which(configured) or configured]
                  if configured else [str(Path(sys.executable).parent / "mpiexec"),
                                      shutil.which("mpiexec")])  # a bare name: PATH's (srun)
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise DistributedError(
        "distributed.workers > 1 starts the workers with mpiexec, which was not found "
        f"{'at ' + configured if configured else 'beside ' + sys.executable + ' or on PATH'}: "
        "pip install 'dlrun[dist]' (mpi4py and MPICH, whose mpiexec lands in the virtualenv), "
        "or set distributed.mpiexec=/path/to/mpiexec")


def launcher_kind(launcher: str) -> str:
    """Which launcher ``launcher`` is: ``"openmpi"`` (Open MPI's mpirun/mpiexec), ``"srun"``
    (Slurm) or ``"mpich"`` (MPICH's Hydra mpiexec, Intel MPI's, and anything it cannot tell:
    the ``dlrun[dist]`` extra installs MPICH). Read from ``LAUNCHER --version``."""
    if Path(launcher).name == "srun":
        return "srun"
    try:
        out = subprocess.run([launcher, "--version"], capture_output=True, text=True,
                             timeout=15, check=False, stdin=subprocess.DEVNULL)
        text = out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        return "mpich"
    if "Open MPI" in text or "OpenRTE" in text or "Open RTE" in text:
        return "openmpi"
    if re.search(r"^slurm \S+", text, re.M):
        return "srun"
    return "mpich"  # "HYDRA build details" (MPICH, Intel MPI, MVAPICH)


def host_flags(kind: str, hosts: Sequence[str] = (), hostfile: str | None = None) -> list[str]:
    """The launcher's options for ``distributed.hosts`` ([node1:4, node2:4]) and
    ``distributed.hostfile``: MPICH ``-hosts``/``-f``, Open MPI ``--host``/``--hostfile``,
    srun ``--nodelist`` (a list of nodes, or a file of them: a path with a ``/``) with
    ``--ntasks-per-node`` from the slots, which must then be the same on every node."""
    flags: list[str] = []
    if kind == "srun":
        if hosts:
            names = [h.partition(":")[0] for h in hosts]
            slots = {h.partition(":")[2] for h in hosts}
            flags += [f"--nodelist={','.join(names)}"]
            if slots - {""}:
                if len(slots) > 1:
                    raise DistributedError(
                        f"distributed.hosts={list(hosts)}: srun starts the same number of tasks "
                        "on each node; give each node the same slots (node1:4,node2:4), or set "
                        "distributed.hostfile (one node a line) and distributed.mpiexec_args")
                flags += [f"--ntasks-per-node={slots.pop()}"]
        if hostfile:
            path = str(hostfile) if "/" in str(hostfile) else f"./{hostfile}"  # srun: a file
            flags += [f"--nodelist={path}"]
        return flags
    if kind == "openmpi":
        if hosts:
            flags += ["--host", ",".join(hosts)]
        if hostfile:
            flags += ["--hostfile", str(hostfile)]
        return flags
    if hosts:
        flags += ["-hosts", ",".join(hosts)]
    if hostfile:
        flags += ["-f", str(hostfile)]
    return flags


def job_command(workers: int, overrides: Sequence[str], run_dir: Path, *, hosts: Sequence[str] = (),
                hostfile: str | None = None, mpiexec: str | None = None,
                mpiexec_args: Sequence[str] = ()) -> list[str]:
    """``mpiexec -n workers [hosts] python -m dlrun.runner.main OVERRIDES hydra.run.dir=RUN``:
    every rank composes the same config and works in the same run folder. The hosts go in the
    options of the launcher found (:func:`launcher_kind`, asked only when there are hosts)."""
    launcher = find_mpiexec(mpiexec)
    cmd = [launcher, "-n", str(workers)]
    if hosts or hostfile:
        cmd += host_flags(launcher_kind(launcher), hosts, hostfile)
    cmd += list(mpiexec_args)
    keep = [o for o in overrides if not o.lstrip("+~").startswith("hydra.run.dir=")]
    quoted = str(run_dir).replace("\\", "\\\\").replace('"', '\\"')  # a sweep's trial folder has '='
    return cmd + [sys.executable, "-m", "dlrun.runner.main", *keep, f'hydra.run.dir="{quoted}"']


def rank_threads(workers: int, multi_host: bool) -> dict[str, str]:
    """The BLAS/OpenMP thread variables for the ranks of a job on this machine: its cores
    shared among them, as torchrun does (every rank's NumPy taking every core makes them spin
    against each other); nothing where the environment sets any of them, or across hosts."""
    if multi_host or any(v in os.environ for v in THREAD_VARIABLES):
        return {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return dict.fromkeys(THREAD_VARIABLES, str(max(1, cores // workers)))


def record_rank(world: World, run_dir: Path) -> None:
    """Note this rank's PID and host in the run folder (for naming a rank that dies)."""
    folder = run_dir / RANKS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(world.rank)).write_text(f"{os.getpid()} {socket.gethostname()}\n")


def _rank_record(f: Path) -> tuple[str, str]:
    """(pid, host) from a rank's file in ``RANKS_DIR`` (empty strings while it is being written)."""
    pid, host = (f.read_text().split() + ["", ""])[:2]
    return pid, host


def _rank_of(run_dir: Path, pid: str) -> str | None:
    for f in (run_dir / RANKS_DIR).glob("*"):
        if _rank_record(f)[0] == pid:
            return f.name
    return None


def _local_ranks(run_dir: Path) -> dict[str, int]:
    """{rank: pid} of the job's ranks recorded so far that run on this machine."""
    host, ranks = socket.gethostname(), {}
    for f in (run_dir / RANKS_DIR).glob("*"):
        pid, where = _rank_record(f)
        if where == host and pid.isdigit():
            ranks[f.name] = int(pid)
    return ranks


def _kill_ranks(run_dir: Path) -> None:
    """SIGKILL the ranks of the job that run on this machine."""
    for pid in _local_ranks(run_dir).values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _Watcher(threading.Thread):
    """Copies one output stream of the job through, keeping MPI's failure banner aside."""

    def __init__(self, stream: IO[str], out: IO[str], found: dict[str, str]):
        super().__init__(daemon=True)
        self.stream, self.out, self.found = stream, out, found

    def run(self) -> None:
        for line in self.stream:
            text = line.rstrip("\n")
            for key, pattern in (("pid", _PID), ("code", _EXIT), ("how", _KILLED)):
                m = pattern.search(text)
                if m and key not in self.found:
                    self.found[key] = m.group(1)
                    if key == "pid":
                        self.found["host"] = m.group(2)
            if _BANNER.match(text.strip()):
                continue
            self.out.write(line)
            self.out.flush()


class _Vigil(threading.Thread):
    """Notes the first rank of this machine whose process vanishes while the job runs: when
    a killed rank makes another abort on a failed collective, mpiexec reports the aborting
    rank, not the dead one."""

    def __init__(self, run_dir: Path, found: dict[str, str]):
        super().__init__(daemon=True)
        self.run_dir, self.found, self.done = run_dir, found, threading.Event()

    def run(self) -> None:
        host, ranks = socket.gethostname(), {}
        while not self.done.wait(0.01):
            ranks = {**_local_ranks(self.run_dir), **ranks}  # a rank keeps its first pid
            for rank, pid in ranks.items():
                if _exited(pid):
                    self.found.setdefault("vanished", f"{rank} {pid} {host}")
                    return


def _exited(pid: int) -> bool:
    """Whether process ``pid`` has ended, including as a zombie its parent (MPI's proxy) has
    not reaped yet: by the time it is reaped, the other ranks may be aborting already."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:  # "pid (name) state ..."
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):  # no /proc (macOS): the kill test is all there is
        return False


def run_job(cmd: Sequence[str], run_dir: Path, env: dict[str, str] | None = None) -> int:
    """Run the MPI job ``cmd`` (with ``env`` added to the environment) to its end; returns 0,
    or raises DistributedError naming the rank that ended it. A first Ctrl-C/SIGTERM is
    passed to the workers (they checkpoint and stop), a second one kills the job."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    found: dict[str, str] = {}
    watchers = [_Watcher(proc.stdout, sys.stdout, found), _Watcher(proc.stderr, sys.stderr, found)]
    vigil = _Vigil(run_dir, found)
    for w in (*watchers, vigil):
        w.start()
    signals: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        signals.append(signum)
        if len(signals) == 1:  # mpiexec passes it on: every rank stops after its step
            proc.send_signal(signal.SIGTERM)
            return
        # the ranks run in sessions of their own: a killed mpiexec would leave them running
        _kill_ranks(run_dir)
        proc.kill()

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        vigil.done.set()
        for s, handler in previous.items():
            signal.signal(s, handler)
        for w in watchers:
            w.join(timeout=5)
    if code == 0:
        return 0
    if signals:
        raise JobStopped
    if "pid" in found:  # mpiexec's banner named the process
        rank = _rank_of(run_dir, found["pid"])
        pid, host = found["pid"], found.get("host", "?")
        how = "ended with " + (found.get("how") or f"exit code {found.get('code', code)}")
    elif "vanished" in found:
        rank, pid, host = found["vanished"].split()
        how = "was the first of this machine's ranks to end (its exit status went to mpiexec)"
    else:
        raise DistributedError(f"the MPI job ({cmd[0]}) ended with exit code {code}; its output is above")
    who = f"rank {rank}" if rank is not None else "a worker"
    raise DistributedError(
        f"{who} (pid {pid} on {host}) {how}; the other workers were stopped and the job "
        f"ended. Its output is above; the last checkpoint (if any) is in "
        f"{run_dir}/checkpoints: continue with dlrun resume={run_dir}")
