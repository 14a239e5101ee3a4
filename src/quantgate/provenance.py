"""The `run_provenance` block every report carries: who ran what, where, on which inputs."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from .cpu import cpu_info, int8_kernels
from .paths import sha256_file


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state(root: Path | None) -> dict:
    """Commit and dirty flag of the checkout; a CI's own commit variable wins when set."""
    ci_sha = os.environ.get("GITHUB_SHA") or os.environ.get("CI_COMMIT_SHA")
    commit = dirty = None
    if root is not None:
        commit = _git(root, "rev-parse", "HEAD")
        status = _git(root, "status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status)
    return {
        "commit": ci_sha or commit,
        "commit_source": "ci" if ci_sha else ("git" if commit else None),
        "dirty": dirty,
    }


def _versions() -> dict:
    import numpy
    import onnx
    import onnxruntime

    from . import __version__

    return {
        "quantgate": __version__,
        "python": platform.python_version(),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
    }


# Options whose value is a secret, and environment variables that hold one: neither reaches a report.
SECRET_OPTIONS = ("--github-token", "--token")
SECRET_VARIABLES = (
    "GITHUB_TOKEN",
    "INPUT_GITHUB_TOKEN",
    "GH_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)
REDACTED = "***"


def scrub_command(argv: list[str], env: Mapping[str, str] | None = None) -> list[str]:
    """`argv` with every secret replaced by ***: the value after a secret option (in either
    `--github-token T` or `--github-token=T` form) and any text equal to a secret the
    environment holds."""
    env = os.environ if env is None else env
    secrets = [v for v in (env.get(k, "").strip() for k in SECRET_VARIABLES) if len(v) >= 4]
    out, hide_next = [], False
    for arg in map(str, argv):
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in SECRET_OPTIONS:
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        for secret in secrets:
            arg = arg.replace(secret, REDACTED)
        out.append(arg)
    return out


# Where quantgate itself comes from: it is not on the package index yet (the name there is not
# ours), so a reproduce line installs it from its repository at a tag or commit.
DEFAULT_SOURCE = "quantgate/quantgate"
_REPO_RE = re.compile(r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+")
_REF_RE = re.compile(r"[A-Za-z0-9_.\-/]{1,100}")


def quantgate_source(env: Mapping[str, str] | None = None) -> dict:
    """The repository and ref quantgate ran from: the action's own (GITHUB_ACTION_REPOSITORY and
    GITHUB_ACTION_REF, set by the runner for a step that uses it), else this version's tag in
    the project's repository."""
    from . import __version__

    env = os.environ if env is None else env
    repo, ref = (env.get("GITHUB_ACTION_REPOSITORY") or "").strip(), (env.get("GITHUB_ACTION_REF") or "").strip()
    if _REPO_RE.fullmatch(repo) and _REF_RE.fullmatch(ref) and ".." not in repo + ref:
        return {"repository": repo, "ref": ref, "from": "action"}
    return {"repository": DEFAULT_SOURCE, "ref": f"v{__version__}", "from": "version"}


def build(
    *,
    inputs: dict[str, Path] | None = None,
    root: Path | None = None,
    argv: list[str] | None = None,
    extra_versions: dict | None = None,
) -> dict:
    """Assemble the block. `inputs` maps a role ("model", "calibration", ...) to a file."""
    versions = _versions()
    if extra_versions:
        versions.update(extra_versions)
    files = {}
    for role, path in (inputs or {}).items():
        p = Path(path)
        files[role] = {
            "path": str(p),
            "sha256": sha256_file(p) if p.is_file() else None,
        }
    return {
        "versions": versions,
        "git": git_state(root),
        "os": {"system": platform.system(), "release": platform.release(), "platform": platform.platform()},
        "cpu": {**cpu_info(), "int8_kernels": int8_kernels()},
        "utc": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "command": scrub_command(list(sys.argv if argv is None else argv)),
        "quantgate_source": quantgate_source(),
        "inputs": files,
    }
