"""What a run sends to MLflow, in the form MLflow takes it: metric and param names with only
the characters it allows, param values within its length, batches within its limits per
``log_batch`` call, a nested config as flat params, and the git commit of the source."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

MAX_PARAMS_PER_BATCH = 100     # MLflow's limits for one log_batch call
MAX_METRICS_PER_BATCH = 1000
MAX_TAGS_PER_BATCH = 100
MAX_PARAM_VALUE_LENGTH = 6000
_INVALID_KEY_CHARS = re.compile(r"[^\w\-. /]")


def sanitize_key(key: str) -> str:
    """``key`` with every character MLflow refuses in a param/metric name replaced by ``_``."""
    key = _INVALID_KEY_CHARS.sub("_", str(key))
    return key or "_"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict/list config as ``{"a.b.c": leaf}``; lists of scalars stay one value."""
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(tree, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in tree):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = tree
    return out


def git_commit(path: Path) -> str | None:
    """The commit checked out in the git work tree holding ``path``, if it is one."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = res.stdout.strip()
    return commit if res.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def param_value(value: Any) -> str:
    """A param's value as MLflow takes it: text, at most MAX_PARAM_VALUE_LENGTH characters."""
    text = "None" if value is None else str(value)
    return text[:MAX_PARAM_VALUE_LENGTH]


def chunks(items: list, size: int) -> Iterable[list]:
    """``items`` in lists of at most ``size`` (MLflow's limits per log_batch call)."""
    for i in range(0, len(items), size):
        yield items[i:i + size]
