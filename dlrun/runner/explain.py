"""Hydra's, OmegaConf's and YAML's errors in dlrun's words, and dlrun's version line.

Hydra reports what goes wrong while it composes the config (an unknown key or option, a
value of the wrong type, a config file that is not YAML) in its own format, ending with
"Set the environment variable HYDRA_FULL_ERROR=1", or as a long traceback. dlrun says the
same in one message (Hydra's list of valid options kept) with its own ``debug=true`` hint.
"""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Iterator

# lines of Hydra's and OmegaConf's messages that are about their internals, not the user's config
_NOISE = ("full_key:", "reference_type=", "object_type=", "Config search path:", "provider=",
          "To append to your config use")


def versions() -> str:
    """dlrun's version and those of what it runs on (NumPy, CuPy when installed, Hydra,
    MLflow, Python), read from the installed distributions without importing them."""
    found = []
    for name, dist in (("NumPy", "numpy"), ("CuPy", "cupy"), ("Hydra", "hydra-core"),
                       ("MLflow", "mlflow")):
        try:
            found.append(f"{name} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            if name == "CuPy":  # published under one name per CUDA version
                found.extend(f"CuPy {d.version}" for d in metadata.distributions()
                             if (d.metadata["Name"] or "").lower().startswith("cupy-cuda"))
    from dlrun import __version__

    return f"dlrun {__version__} ({', '.join(found)}, Python {platform.python_version()})"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _yaml_text(error: BaseException) -> str:
    """A YAML syntax error as one line: the file, line and column, and what is wrong there."""
    mark = error.problem_mark  # type: ignore[attr-defined]
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}"
    context = getattr(error, "context", None)
    start = getattr(error, "context_mark", None)
    since = (f" ({context} from line {start.line + 1}, column {start.column + 1})"
             if context and start is not None else "")
    return f"the config file {where} is not valid YAML: {error.problem}{since}"  # type: ignore[attr-defined]


def _clean(text: str) -> str:
    """Hydra's message without the lines about its internals, its sentences on one line (a
    list of valid options, indented, stays one option a line)."""
    out: list[str] = []
    for line in str(text).splitlines():
        if not line.strip() or line.strip().startswith(_NOISE):
            continue
        if out and not line[:1].isspace() and not out[-1][:1].isspace():
            out[-1] = f"{out[-1].rstrip('.:')}: {line}"
        else:
            out.append(line)
    return "\n".join(out)


def explain(error: BaseException) -> str | None:
    """What to tell the user about a config error of Hydra, OmegaConf or YAML (``error`` or
    one it was raised from); None when it is none of those."""
    import yaml
    from hydra.errors import CompactHydraException, OverrideParseException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    for e in _chain(error):
        if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
            return _yaml_text(e)
    if isinstance(error, MissingMandatoryValue):
        key = getattr(error, "full_key", None) or "a key"
        return (f"{key} has no value and the run needs one (its config file leaves it to the "
                f"command line): add {key}=VALUE")
    if isinstance(error, OverrideParseException):
        return f"cannot read the override {error.override!r}: {_clean(error.message)}"
    if isinstance(error, CompactHydraException):
        cause = error.__cause__
        extra = _clean(str(cause)) if isinstance(cause, OmegaConfBaseException) else ""
        return _clean("\n".join((str(error), extra)))
    if isinstance(error, OmegaConfBaseException):
        return _clean(str(error))
    return None
