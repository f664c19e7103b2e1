"""A real ``mlflow server`` on 127.0.0.1 (a free port, an SQLite store in a folder) that can be
stopped and started again on the same port and store: for the tests and the outage benchmark."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Mapping

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` for the store in ``root``; ``start``/``stop`` as often as needed."""

    def __init__(self, root: Path, env: Mapping[str, str] | None = None):
        self.root, self.port, self.env = Path(root), free_port(), dict(env or os.environ)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.artifacts = self.root / "artifacts"
        self.log = self.root / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> None:
        """Starts the server and waits until it answers ``/health``; raises RuntimeError if not."""
        cli = Path(sys.executable).parent / "mlflow"
        cmd = [str(cli) if cli.exists() else "mlflow", "server", "--backend-store-uri",
               self.backend_uri, "--artifacts-destination", str(self.artifacts),
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.root, stdout=out, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n"
                                   f"{self.log.read_text()[-3000:]}")
            try:
                with DIRECT.open(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not ready within {timeout:.0f} s:\n"
                                   f"{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        """Stops the server and its workers (its whole process group)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def runs(self, experiment: str = "dlrun") -> tuple:
        """(an MlflowClient of the server, the runs of ``experiment``)."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.url)
        exp = client.get_experiment_by_name(experiment)
        return client, (client.search_runs([exp.experiment_id]) if exp else [])
