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
    "INPUT_GITHUB-TOKEN",
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


# Where quantgate itself comes from. It is not on the package index (a package of that name there
# is not this one), so a reproduce line or a workflow pins its repository and commit, read from
# how this copy was built, never assumed.
_REPO_RE = re.compile(r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+")
_REF_RE = re.compile(r"[A-Za-z0-9_.\-/]{1,100}")
_SHA_RE = re.compile(r"[0-9a-f]{40}")
_GITHUB_URL_RE = re.compile(
    r"(?:https://|ssh://git@|git@|git\+https://)github\.com[/:]([A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+?)(?:\.git)?/?$"
)


def _ok_repo(repo: str | None) -> bool:
    return bool(repo) and _REPO_RE.fullmatch(repo or "") is not None and ".." not in (repo or "")


def _ok_ref(ref: str | None) -> bool:
    return bool(ref) and _REF_RE.fullmatch(ref or "") is not None and ".." not in (ref or "")


def github_repository(url: str | None) -> str | None:
    """OWNER/NAME of a GitHub clone or install URL, else None."""
    m = _GITHUB_URL_RE.match((url or "").strip())
    return m.group(1) if m and _ok_repo(m.group(1)) else None


def _installed_from() -> dict | None:
    """What pip recorded about this install (PEP 610 direct_url.json): a git URL and the commit it
    resolved to, or the folder of an editable checkout (then its git remote and HEAD)."""
    import json
    from importlib import metadata

    try:
        raw = metadata.distribution("quantgate").read_text("direct_url.json")
        info = json.loads(raw) if raw else None
    except (metadata.PackageNotFoundError, ValueError, OSError):
        return None
    if not isinstance(info, dict):
        return None
    url = str(info.get("url") or "")
    vcs = info.get("vcs_info") if isinstance(info.get("vcs_info"), dict) else None
    if vcs and vcs.get("vcs") == "git":
        repo, commit = github_repository(url), str(vcs.get("commit_id") or "")
        if repo and _SHA_RE.fullmatch(commit):
            ref = str(vcs.get("requested_revision") or "")
            return {"repository": repo, "ref": ref if _ok_ref(ref) else commit, "commit": commit, "from": "pip"}
    if url.startswith("file://"):
        folder = Path(url.removeprefix("file://"))
        repo = github_repository(_git(folder, "remote", "get-url", "origin"))
        commit = _git(folder, "rev-parse", "HEAD") or ""
        if repo and _SHA_RE.fullmatch(commit):
            return {"repository": repo, "ref": commit, "commit": commit, "from": "checkout"}
    return None


def quantgate_source(env: Mapping[str, str] | None = None) -> dict:
    """The repository and ref (and commit, where known) quantgate ran from, first found of:
    the action's own (GITHUB_ACTION_REPOSITORY and GITHUB_ACTION_REF, set by the runner for a
    step that uses it); the image's (QUANTGATE_SOURCE_REPOSITORY and QUANTGATE_SOURCE_REF, set
    by the release build); what pip recorded when it installed this copy (a git URL and commit,
    or an editable checkout's origin and HEAD). Else the repository is None: unknown, and said so."""
    from . import __version__

    env = os.environ if env is None else env
    for repo_var, ref_var, origin in (
        ("GITHUB_ACTION_REPOSITORY", "GITHUB_ACTION_REF", "action"),
        ("QUANTGATE_SOURCE_REPOSITORY", "QUANTGATE_SOURCE_REF", "image"),
    ):
        repo, ref = (env.get(repo_var) or "").strip(), (env.get(ref_var) or "").strip()
        if _ok_repo(repo) and _ok_ref(ref):
            out = {"repository": repo, "ref": ref, "from": origin}
            if _SHA_RE.fullmatch(ref):
                out["commit"] = ref
            return out
    found = _installed_from()
    if found is not None:
        return found
    return {"repository": None, "ref": f"v{__version__}", "from": "unknown"}


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
