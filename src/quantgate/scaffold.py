"""`quantgate init`: what a repository without quantgate gets to start with.

- a registry listing every `.onnx` file found below the root, each `quant_mode: "fp32"` with its
  `sha256` (nothing is gated until a mode is chosen: `--registry-id ID --set-mode` on a producer);
- `[tool.quantgate]` naming that registry, in pyproject.toml (appended, or a new file);
- `.github/workflows/quantgate.yml`: the action pinned to a commit SHA, `persist-credentials:
  false`, the least permissions, the results kept as an artifact;
- `.github/workflows/quantgate-comment.yml` (unless left out): the fork-safe companion that
  posts the comment a fork's read-only run could not (docs/comment.md);
- `.gitignore` lines for the files the gate writes.

Nothing that exists is replaced: every target is checked before the first file is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import limits
from .errors import UserError, param
from .paths import INT8_SUFFIX, atomic_write_text

DEFAULT_REGISTRY = "quantgate.json"
WORKFLOW = Path(".github/workflows/quantgate.yml")
COMPANION = Path(".github/workflows/quantgate-comment.yml")
RESULTS_FILES = ("quantgate-results.json", "quantgate-results.md", "quantgate-comment.md")
# The actions the workflows use, pinned as this repository's own workflows pin them (a test keeps
# the two in step): a moved or compromised tag cannot change what runs.
CHECKOUT = "actions/checkout@34e114876b0b11c390a56381ad16ebd13914f8d5 # v4.3.1"
UPLOAD_ARTIFACT = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02 # v4.6.2"
DOWNLOAD_ARTIFACT = "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093 # v4.3.0"
SETUP_PYTHON = "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0"
# folders never searched for models: version control, environments, caches, build output
SKIP_DIRS = {"node_modules", "__pycache__", "site-packages", "build", "dist", "venv"}
_ACTION_RE = re.compile(r"([A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+)@([0-9a-f]{40})")


@dataclass
class Found:
    path: Path  # relative to the root
    sha256: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    root: Path
    registry: Path  # relative to the root
    models: list[Found]
    files: dict[Path, str]  # relative path -> new text (whole files)
    appends: dict[Path, str]  # relative path -> text appended to an existing file
    action: str  # OWNER/NAME@SHA


def find_models(root: Path) -> list[Path]:
    """Every fp32 `.onnx` file below `root` (sorted; int8 sidecars, hidden folders and
    environments left out), as paths relative to it."""
    out: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(".onnx") and not name.endswith(INT8_SUFFIX):
                p = Path(folder, name)
                if p.is_file():
                    out.append(p.relative_to(root))
        if len(out) > limits.REGISTRY_ENTRIES.value():
            break
    return sorted(out)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _notes(root: Path, rel: Path) -> list[str]:
    """What a newcomer should know about one model file: weights missing, a sidecar already there."""
    from .onnxio import missing_external_files

    notes = []
    p = root / rel
    missing = missing_external_files(p)
    if missing is None:
        notes.append("onnx cannot read it; validate will say what is wrong")
    elif missing:
        notes.append(f"its external weights {', '.join(missing)} are missing (validate will say so too)")
    sidecar = p.with_name(p.name[: -len(".onnx")] + INT8_SUFFIX)
    if sidecar.is_file():
        notes.append(
            f"{sidecar.name} exists beside it: the entry is fp32 until you choose a mode "
            "(--set-mode on a producer re-makes it; or set quant_mode and int8_sha256 by hand)"
        )
    return notes


def model_ids(paths: list[Path]) -> list[str]:
    """A model's id is its file's stem; where stems repeat, its path with '/' as '_'."""
    stems = [p.name[: -len(".onnx")] for p in paths]
    return [
        stem if stems.count(stem) == 1 else p.with_suffix("").as_posix().replace("/", "_")
        for stem, p in zip(stems, paths, strict=True)
    ]


def registry_text(models: list[Found], registry: Path) -> str:
    base = registry.parent
    entries = [
        {
            "id": model_id,
            "onnx": Path(os.path.relpath(f.path, base)).as_posix(),
            "quant_mode": "fp32",
            "sha256": f.sha256,
        }
        for model_id, f in zip(model_ids([f.path for f in models]), models, strict=True)
    ]
    return json.dumps({"schema_version": 1, "models": entries}, indent=2) + "\n"


def default_branch(root: Path) -> str:
    """The branch pushes are gated on: origin's default, else the current branch, else main."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    origin = git("symbolic-ref", "--short", "refs/remotes/origin/HEAD").removeprefix("origin/")
    branch = origin or git("branch", "--show-current") or "main"
    return branch if re.fullmatch(r"[A-Za-z0-9._/\-]{1,100}", branch) else "main"


def workflow_text(action: str, registry: str, branch: str, companion: bool) -> str:
    fork = (
        """      # A pull request from a fork gets a read-only token: the comment body is left in
      # quantgate-comment.md, and quantgate-comment.yml posts it (docs/comment.md).
      - name: Keep the comment body for the companion workflow (forks)
        if: always() && hashFiles('quantgate-comment.md') != ''
        uses: {upload}
        with:
          name: quantgate-comment
          path: quantgate-comment.md
          retention-days: 3
"""
        if companion
        else ""
    )
    return f"""name: quantgate

# Written by `quantgate init`. Gates the int8 sidecars of the models in {registry}: fp32 and
# int8 side by side, the step fails when a model's drop is over its budget. Every action is
# pinned to a commit SHA (its release in the trailing comment); the token stays out of .git.
on:
  pull_request:
  push:
    branches: [{branch}]

# Nothing by default; the job asks for what it needs.
permissions: {{}}

jobs:
  quantgate:
    runs-on: ubuntu-24.04
    timeout-minutes: 30
    permissions:
      contents: read        # check out the models and the registry
      pull-requests: write  # the results comment (a fork's pull request gets a read-only token)
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false  # the action talks to GitHub through its github-token input, not git
      - name: Gate the int8 sidecars
        id: gate
        uses: {action}
        with:
          registry: {registry}
      - name: Keep the results
        if: always()
        uses: {UPLOAD_ARTIFACT}
        with:
          name: quantgate-results
          path: |
            quantgate-results.json
            quantgate-results.md
""" + fork.format(upload=UPLOAD_ARTIFACT)


def companion_text(action: str) -> str:
    repo, sha = _ACTION_RE.fullmatch(action.split(" ")[0]).groups()  # type: ignore[union-attr]
    return f"""name: quantgate comment (forks)

# Written by `quantgate init`. A pull request from a fork gets a read-only token, so its gate run
# saves the comment body as the `quantgate-comment` artifact instead of posting it. This runs
# after that run (pass or fail), with this repository's token, and posts it. It never checks out
# or runs the pull request's code: it installs quantgate at the commit quantgate.yml pins, reads
# the artifact as untrusted text (`quantgate comment --from-artifact` checks and sanitises it)
# and finds the pull request from the triggering run, never from the artifact. See
# docs/comment.md in quantgate.
on:
  workflow_run:  # zizmor: ignore[dangerous-triggers] fork-safe by design: no PR code runs here
    workflows: [quantgate]
    types: [completed]

permissions: {{}}

jobs:
  comment:
    if: >-
      github.event.workflow_run.event == 'pull_request' &&
      github.event.workflow_run.head_repository.full_name != github.repository &&
      (github.event.workflow_run.conclusion == 'success' ||
       github.event.workflow_run.conclusion == 'failure')
    runs-on: ubuntu-24.04
    timeout-minutes: 10
    permissions:
      actions: read         # download the triggering run's artifact
      pull-requests: write  # find the pull request and post or update the comment
    steps:
      - name: Download the comment body the fork's run saved
        id: body
        continue-on-error: true  # no artifact: the run posted itself, or stopped before rendering
        uses: {DOWNLOAD_ARTIFACT}
        with:
          name: quantgate-comment
          path: ${{{{ runner.temp }}}}/quantgate-comment
          run-id: ${{{{ github.event.workflow_run.id }}}}
          github-token: ${{{{ github.token }}}}
      - if: steps.body.outcome == 'success'
        uses: {SETUP_PYTHON}
        with:
          python-version: "3.11"
      - name: Post or update the comment
        if: steps.body.outcome == 'success'
        env:
          GITHUB_TOKEN: ${{{{ github.token }}}}
        run: |
          python -m pip install --quiet "quantgate @ git+https://github.com/{repo}@{sha}"
          quantgate comment --workflow-run-event \\
            --from-artifact "$RUNNER_TEMP/quantgate-comment/quantgate-comment.md"
"""


def pyproject_table(registry: str) -> str:
    return f'[tool.quantgate]\nregistry = "{registry}"  # written by quantgate init; see docs/cli.md\n'


def action_ref(given: str | None, source: dict) -> str:
    """`OWNER/NAME@SHA # ref` for the workflow's `uses:`: as given, else from where this quantgate
    was built (`provenance.quantgate_source`); a commit SHA, never a tag that can move."""
    if given:
        m = _ACTION_RE.fullmatch(given.strip())
        if m is None:
            raise UserError(
                f"'{given}' is not OWNER/NAME@SHA (a 40-hex commit)",
                subject=param("action"),
                fix="give the action's repository and the commit to pin, e.g. acme/quantgate@<40 hex digits>",
            )
        return f"{m.group(1)}@{m.group(2)}"
    repo, commit = source.get("repository"), source.get("commit")
    if not (isinstance(repo, str) and isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit)):
        raise UserError(
            "cannot tell which repository and commit this quantgate was installed from, so the workflow "
            "could not be pinned",
            subject=param("action"),
            fix=f"pass {param('action')} OWNER/NAME@SHA (the quantgate repository and the commit to run), "
            f"or {param('no_workflow')}",
        )
    ref = source.get("ref")
    tail = f" # {ref}" if isinstance(ref, str) and ref != commit else ""
    return f"{repo}@{commit}{tail}"


def plan(
    root: Path,
    registry: Path,
    *,
    action: str | None,
    source: dict,
    workflow: bool = True,
    companion: bool = True,
) -> Plan:
    """What `init` would write, checked: the registry and workflows must not exist yet, nor
    [tool.quantgate]; raises a `UserError` naming the first one that does."""
    root = root.resolve()
    reg_rel = Path(os.path.relpath((root / registry).resolve(), root))
    if reg_rel.parts and reg_rel.parts[0] == "..":
        raise UserError("is outside the repository", subject=f"{param('registry')} {registry}", fix="name a path in it")
    files: dict[Path, str] = {}
    appends: dict[Path, str] = {}
    paths = find_models(root)
    models = [Found(p, _sha256(root / p), _notes(root, p)) for p in paths]
    files[reg_rel] = registry_text(models, reg_rel)
    uses = ""
    if workflow:
        uses = action_ref(action, source)
        files[WORKFLOW] = workflow_text(uses, reg_rel.as_posix(), default_branch(root), companion)
        if companion:
            files[COMPANION] = companion_text(uses)
    existing = [p for p in files if (root / p).exists() or (root / p).is_symlink()]
    if existing:
        raise UserError(
            f"{', '.join(p.as_posix() for p in existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "quantgate init never replaces a file",
            fix="move it away, or name another registry with " + param("registry"),
        )
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise UserError(
                f"cannot be read ({type(e).__name__})", subject="pyproject.toml", fix="fix it first"
            ) from None
        if isinstance(data.get("tool"), dict) and "quantgate" in data["tool"]:
            raise UserError(
                "already has [tool.quantgate]: this repository is set up",
                subject="pyproject.toml",
                fix="run quantgate validate, or remove the table to start again",
            )
        text = pyproject.read_text(encoding="utf-8")
        appends[Path("pyproject.toml")] = ("\n" if text.endswith("\n") else "\n\n") + pyproject_table(
            reg_rel.as_posix()
        )
    else:
        files[Path("pyproject.toml")] = pyproject_table(reg_rel.as_posix())
    gitignore = root / ".gitignore"
    have = set(gitignore.read_text(encoding="utf-8").splitlines()) if gitignore.is_file() else set()
    wanted = [f"/{name}" for name in RESULTS_FILES if f"/{name}" not in have and name not in have]
    if wanted:
        lines = "# written by quantgate gate and the action\n" + "".join(f"{w}\n" for w in wanted)
        if gitignore.is_file():
            old = gitignore.read_text(encoding="utf-8")
            appends[Path(".gitignore")] = ("" if old.endswith("\n") or not old else "\n") + lines
        else:
            files[Path(".gitignore")] = lines
    return Plan(root, reg_rel, models, files, appends, uses)


def write(p: Plan) -> list[Path]:
    """Write the plan: new files atomically, appends at the end of the existing ones."""
    written = []
    for rel, text in p.files.items():
        atomic_write_text(p.root / rel, text)
        written.append(rel)
    for rel, text in p.appends.items():
        target = p.root / rel
        atomic_write_text(target, target.read_text(encoding="utf-8") + text)
        written.append(rel)
    return written
