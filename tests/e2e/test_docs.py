"""Every command the README and docs/ mark as runnable runs as written, in a fresh copy of the
repository, and every figure they show as its output is one the command prints.

A ```sh block preceded by `<!-- run -->` runs line by line, a ```python block so marked as one
script (`<!-- run: exit N -->` expects exit code N); a
```text block preceded by `<!-- output -->` holds what the run block before it printed, and each
figure in it with four or more decimals must appear in what the commands print now. Commands
that need GitHub or a Docker engine are not marked: the comment and container tests cover them.
Two kinds of line are not run, and the test environment stands in for them: `pip install ...`
(this environment is that install) and `bash scripts/test.sh` (the suite running this test).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, require_tool

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "model" / "tiny" / "README.md"]
_BLOCK = re.compile(r"<!-- (run(?::\s*exit (\d+))?|output) -->\s*\n```(\w*)\n(.*?)```", re.S)
FIGURE = re.compile(r"(?<![\w.])\d+\.\d{4,}(?![\d])")
SKIPPED_LINES = (re.compile(r"^pip install\b"), re.compile(r"\bscripts/test\.sh\b"))


@dataclass
class Run:
    doc: Path
    commands: list[str]
    exit_code: int
    figures: list[str]

    def __str__(self) -> str:
        return f"{self.doc.relative_to(REPO)}: {self.commands[0][:60] if self.commands else '(none)'}"


def _commands(body: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", body)
    heredoc = None
    out: list[str] = []
    for line in joined.split("\n"):
        if heredoc is not None:  # a heredoc stays one command, its lines as they are
            out[-1] += "\n" + line
            if line.strip() == heredoc:
                heredoc = None
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or any(p.search(stripped) for p in SKIPPED_LINES):
            continue
        out.append(stripped)
        m = re.search(r"<<-?'?(\w+)'?", stripped)
        if m:
            heredoc = m.group(1)
    return out


def runs_of(doc: Path) -> list[Run]:
    runs: list[Run] = []
    for m in _BLOCK.finditer(doc.read_text(encoding="utf-8")):
        kind, code, lang, body = m.groups()
        if kind.startswith("run") and lang == "python":  # the whole block, as one script
            runs.append(Run(doc, [f"python - <<'QUANTGATE_DOC_PY'\n{body}QUANTGATE_DOC_PY"], int(code or 0), []))
        elif kind.startswith("run"):
            runs.append(Run(doc, _commands(body), int(code or 0), []))
        elif runs:
            runs[-1].figures += FIGURE.findall(body)
    return runs


def test_the_docs_mark_commands_to_run():
    marked = {d.relative_to(REPO).as_posix(): len(runs_of(d)) for d in DOCS}
    assert marked["README.md"] >= 2 and marked["docs/cli.md"] >= 4 and marked["docs/measurement.md"] >= 1
    assert sum(marked.values()) >= 15, marked


def _fresh_copy(dest: Path) -> Path:
    """The repository's tracked files as they are in the working tree (a fresh checkout of it)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


@pytest.mark.parametrize("doc", [d for d in DOCS if runs_of(d)], ids=lambda d: d.relative_to(REPO).as_posix())
def test_documented_commands_run_as_written(doc, tmp_path):
    if any("--avx2-check" in c for r in runs_of(doc) for c in r.commands):
        require_tool(
            shutil.which("qemu-x86_64") is not None,
            f"NO qemu-x86_64: the commands of {doc.name} did NOT run; apt-get install qemu-user",
        )
    work = _fresh_copy(tmp_path / "repo")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    for run in runs_of(doc):
        printed = ""
        for i, cmd in enumerate(run.commands):
            proc = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True, timeout=1800)
            printed += proc.stdout + proc.stderr
            want = run.exit_code if i == len(run.commands) - 1 else 0
            assert proc.returncode == want, f"{run}: `{cmd}` exited {proc.returncode}:\n{proc.stderr[-2000:]}"
        missing = [f for f in run.figures if f not in printed]
        assert not missing, f"{run}: the doc shows {missing}, which the commands no longer print:\n{printed[-3000:]}"
