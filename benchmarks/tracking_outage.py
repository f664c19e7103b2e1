"""Training speed of a run whose MLflow server goes away, and whether every record arrives.

Each round trains the same seeded run against a real ``mlflow server`` (127.0.0.1, SQLite
store) three times, in random order:

  up       the server runs throughout
  restart  the server is stopped once the run exists, and started again --down s later
  down     the server is stopped once the run exists and stays down to the end

and reports the run's own training time (``results.json``'s ``train_time``: process start,
data loading and the final upload are outside it) and its steps per second, each as a ratio
to ``up``. A run that ended with records in its spool is sent with
``dlrun sync`` once the server is back; then the store must hold every (metric, step) the
``up`` run logged, the same params and the same artifacts: nothing is lost.

    python benchmarks/tracking_outage.py                 # 3 rounds, the MLP on digits
    python benchmarks/tracking_outage.py --rounds 1 --epochs 4
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import clean_env, dlrun_command  # noqa: E402
from tests.mlflow_server import MlflowServer  # noqa: E402

SCENARIOS = ("up", "restart", "down")


def user_env() -> dict[str, str]:
    """A dlrun process's environment with MLflow's HTTP retries as a user has them (the
    tests' environment shortens them)."""
    env = clean_env()
    env.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
    return env


def run_once(scenario: str, args: argparse.Namespace, work: Path) -> dict:
    """Trains once under ``scenario``; returns its timings and what its MLflow run holds."""
    server = MlflowServer(work / "server", clean_env())
    server.start()
    cmd = [*dlrun_command(), f"model={args.model}", f"trainer.epochs={args.epochs}",
           "trainer.log_every=1", f"trainer.checkpoint_every={args.checkpoint_every}",
           f"logger.tracking_uri={server.url}", "seed=1"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, env=user_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    restarter, back = None, {}
    try:
        if scenario != "up":
            while not server.runs()[1]:  # the run exists: its records now go to the server
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
            server.stop()
            stopped_at = time.monotonic() - started
            if scenario == "restart":
                def restart() -> None:
                    server.start()
                    back["at"] = time.monotonic() - started
                restarter = threading.Timer(args.down, restart)
                restarter.start()
        out, err = proc.communicate(timeout=1800)
        ended_at = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        if restarter is not None:
            restarter.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{scenario}: dlrun exited {proc.returncode}\n{out[-2000:]}\n{err[-3000:]}")
    (folder,) = [p for p in (work / "outputs" / "runs").glob("*/*") if p.is_dir()]
    results = json.loads((folder / "results.json").read_text())
    spooled = (folder / "mlflow-spool.jsonl").exists()
    if server.proc is None or server.proc.poll() is not None:
        server.start()
    if spooled:
        synced = subprocess.run([*dlrun_command(), "sync", str(folder)], cwd=work, env=clean_env(),
                                capture_output=True, text=True, timeout=600)
        if synced.returncode != 0:
            raise RuntimeError(f"{scenario}: dlrun sync exited {synced.returncode}\n{synced.stderr[-3000:]}")
    try:
        client, (record,) = server.runs()
        rid = record.info.run_id
        steps = {(k, m.step) for k in record.data.metrics
                 for m in client.get_metric_history(rid, k)}
        artifacts = {a.path for a in client.list_artifacts(rid)}
        held = {"status": record.info.status, "steps": steps, "params": record.data.params,
                "artifacts": artifacts}
    finally:
        server.stop()
    return {"train_time": results["train_time"], "steps_per_sec": results["steps"] / results["train_time"],
            "wall_time": results["wall_time"], "spooled_at_end": spooled, "held": held,
            "stopped_at": stopped_at if scenario != "up" else None, "back_at": back.get("at"),
            "ended_at": ended_at}


def drop_uri(params: dict) -> dict:
    """``params`` without the logger's (each run has a server and a folder of its own)."""
    return {k: v for k, v in params.items() if not k.startswith("logger.")}


def compare(up: dict, other: dict) -> list[str]:
    """What ``other``'s MLflow run lacks (or has in excess) against the ``up`` run's."""
    a, b = up["held"], other["held"]
    problems = []
    if b["status"] != "FINISHED":
        problems.append(f"status {b['status']}")
    if a["steps"] != b["steps"]:
        problems.append(f"{len(a['steps'] - b['steps'])} metric records missing "
                        f"(e.g. {sorted(a['steps'] - b['steps'])[:3]}), "
                        f"{len(b['steps'] - a['steps'])} extra (e.g. {sorted(b['steps'] - a['steps'])[:3]})")
    if drop_uri(a["params"]) != drop_uri(b["params"]):
        pa, pb = drop_uri(a["params"]), drop_uri(b["params"])
        problems.append(f"params differ: {sorted((k, pa.get(k), pb.get(k)) for k in pa.keys() | pb.keys() if pa.get(k) != pb.get(k))[:5]}")
    if a["artifacts"] != b["artifacts"]:
        problems.append(f"artifacts differ: {sorted(a['artifacts'] ^ b['artifacts'])}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--checkpoint-every", type=int, default=5, help="steps between checkpoints")
    parser.add_argument("--down", type=float, default=2.0,
                        help="restart: seconds before the server is started again")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    rows: dict[str, list[dict]] = {s: [] for s in SCENARIOS}
    lost: list[str] = []
    for r in range(args.rounds):
        order = random.Random(r).sample(SCENARIOS, len(SCENARIOS))
        done = {}
        for scenario in order:
            with tempfile.TemporaryDirectory(prefix=f"outage-{scenario}-") as tmp:
                done[scenario] = run_once(scenario, args, Path(tmp))
            d = done[scenario]
            print(f"round {r + 1} {scenario:8s} train {d['train_time']:6.2f} s  "
                  f"{d['steps_per_sec']:6.1f} steps/s  wall {d['wall_time']:6.2f} s  "
                  f"spooled at end: {d['spooled_at_end']}"
                  + (f"  (server stopped at {d['stopped_at']:.1f} s" if d["stopped_at"] else "")
                  + (f", back at {d['back_at']:.1f} s" if d["back_at"] else "")
                  + (f", run ended at {d['ended_at']:.1f} s)" if d["stopped_at"] else ""), flush=True)
        for scenario in SCENARIOS:
            rows[scenario].append(done[scenario])
            if scenario != "up":
                lost += [f"round {r + 1} {scenario}: {p}" for p in compare(done["up"], done[scenario])]

    base = statistics.median(d["train_time"] for d in rows["up"])
    base_rate = statistics.median(d["steps_per_sec"] for d in rows["up"])
    print(f"\n{args.model}, {args.epochs} epochs, a checkpoint every {args.checkpoint_every} steps, "
          f"median of {args.rounds} rounds")
    print("| scenario | train time (s) | vs up | steps/s | vs up | wall time (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    summary = {}
    for scenario in SCENARIOS:
        t = statistics.median(d["train_time"] for d in rows[scenario])
        rate = statistics.median(d["steps_per_sec"] for d in rows[scenario])
        wall = statistics.median(d["wall_time"] for d in rows[scenario])
        summary[scenario] = {"train_time": t, "steps_per_sec": rate, "wall_time": wall,
                             "train_time_ratio": t / base, "rate_ratio": rate / base_rate}
        print(f"| {scenario} | {t:.2f} | {t / base:.2f} | {rate:.1f} | {rate / base_rate:.2f} | {wall:.2f} |")
    print("\nnothing lost" if not lost else "LOST:\n" + "\n".join(lost))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "summary": summary, "lost": lost}, indent=2))
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
