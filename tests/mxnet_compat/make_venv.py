"""Make (once) the side virtualenv that holds the oracle, MXNet 1.9.1 with NumPy < 1.24.

    python tests/mxnet_compat/make_venv.py        # prints the venv's python, or why not

The venv is ``$DLRUN_MXNET_VENV`` or ``.mxvenv`` at the repository root (git-ignored);
an existing venv whose ``import mxnet`` works is reused as is, so CI can cache the folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ["mxnet==1.9.1", "numpy<1.24"]
CHECK = "import mxnet, numpy; assert mxnet.__version__ == '1.9.1', mxnet.__version__"


def venv_dir() -> Path:
    return Path(os.environ.get("DLRUN_MXNET_VENV") or ROOT / ".mxvenv")


def _works(python: Path) -> str | None:
    """None when ``python`` imports MXNet 1.9.1, else why not."""
    if not python.exists():
        return f"{python} does not exist"
    res = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, timeout=120)
    return None if res.returncode == 0 else (res.stderr.strip().splitlines() or ["?"])[-1]


def ensure_venv() -> tuple[Path | None, str]:
    """(the venv's python, "") when MXNet 1.9.1 runs there (made now if needed), else
    (None, the reason)."""
    folder = venv_dir()
    python = folder / "bin" / "python"
    if _works(python) is None:
        return python, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True,
                       capture_output=True, text=True, timeout=300)
        res = subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
                             capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"cannot make the MXNet venv at {folder}: {e}"
    if res.returncode != 0:
        tail = " ".join(res.stderr.strip().splitlines()[-2:])
        return None, f"pip cannot install {' '.join(REQUIREMENTS)} into {folder}: {tail}"
    why = _works(python)
    return (python, "") if why is None else (None, f"MXNet 1.9.1 does not import in {folder}: {why}")


if __name__ == "__main__":
    found, reason = ensure_venv()
    print(found if found else reason)
    sys.exit(0 if found else 1)
