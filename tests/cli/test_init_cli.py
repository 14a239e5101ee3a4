"""Onboarding a repository: `quantgate init`, `[tool.quantgate]` in pyproject.toml, and the walk
from an fp32 registry to a gated model, through the real command."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest
import yaml

import modelzoo
from action_support import WORKFLOWS, _tool
from conftest import assert_one_line_error, run_cli
from quantgate import scaffold

SHA = "0123456789abcdef0123456789abcdef01234567"
ACTION = f"acme/quantgate@{SHA}"


@pytest.fixture
def user_repo(repo):
    """A repository as a newcomer has it: models in folders, one with an int8 file already, one
    whose external weights are missing, an environment folder with a model that is not theirs,
    and a .gitignore of its own."""
    (repo / "models" / "a").mkdir(parents=True)
    (repo / "models" / "b").mkdir(parents=True)
    modelzoo.mlp(repo / "models" / "a", name="scorer")
    modelzoo.mlp(repo / "models" / "b", name="scorer", seed=3)
    modelzoo.mlp(repo / "models", name="ranker")
    (repo / "models" / "ranker.int8.onnx").write_bytes((repo / "models" / "ranker.onnx").read_bytes())
    ext = modelzoo.external_data(repo / "models", name="big")
    next(ext.parent.glob("big*.data")).unlink()
    (repo / ".venv" / "lib").mkdir(parents=True)
    modelzoo.mlp(repo / ".venv" / "lib", name="not_ours")
    (repo / ".gitignore").write_text("*.pyc")  # no final newline
    return repo


def test_init_writes_a_starter_setup_and_says_what_next(user_repo):
    proc = run_cli("init", "--action", ACTION, cwd=user_repo)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    reg = json.loads((user_repo / "quantgate.json").read_text())
    entries = {e["id"]: e for e in reg["models"]}
    assert sorted(entries) == ["big", "models_a_scorer", "models_b_scorer", "ranker"]  # stems repeat: paths
    for e in entries.values():
        assert e["quant_mode"] == "fp32"
        assert e["sha256"] == hashlib.sha256((user_repo / e["onnx"]).read_bytes()).hexdigest()
    assert "wrote quantgate.json: 4 model(s), every one quant_mode fp32 with its sha256" in out
    assert "note: models/big.onnx: its external weights" in out and "are missing" in out
    assert "note: models/ranker.onnx: ranker.int8.onnx exists beside it" in out
    assert "next:\n  quantgate validate" in out
    assert "quantgate ptq-dynamic models/a/scorer.onnx --registry-id models_a_scorer --set-mode" in out

    assert (user_repo / "pyproject.toml").read_text().startswith('[tool.quantgate]\nregistry = "quantgate.json"')
    assert (user_repo / ".gitignore").read_text() == (
        "*.pyc\n# written by quantgate gate and the action\n"
        "/quantgate-results.json\n/quantgate-results.md\n/quantgate-comment.md\n"
    )
    wf = yaml.safe_load((user_repo / ".github/workflows/quantgate.yml").read_text())
    steps = wf["jobs"]["quantgate"]["steps"]
    assert wf["permissions"] == {} and wf["jobs"]["quantgate"]["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
    }
    assert steps[0]["with"] == {"persist-credentials": False}
    uses = [s["uses"] for s in steps if "uses" in s]
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    assert steps[1]["uses"] == ACTION and steps[1]["with"] == {"registry": "quantgate.json"}
    companion = (user_repo / ".github/workflows/quantgate-comment.yml").read_text()
    assert f"git+https://github.com/acme/quantgate@{SHA}" in companion and "actions/checkout" not in companion

    # the registry is valid as written, and every command finds it through [tool.quantgate]
    assert run_cli("validate", cwd=user_repo / "models").returncode == 2  # big's weights are missing: said
    nothing = run_cli("gate", cwd=user_repo)
    assert nothing.returncode == 3 and "[SKIP ] 4 fp32 entries not gated" in nothing.stdout


def test_init_workflows_pass_the_projects_own_security_checks(user_repo):
    """What init writes is held to the rules this repository's workflows are: zizmor finds
    nothing, GitHub's workflow schema accepts it, and the actions are pinned as ours are."""
    assert run_cli("init", "--action", ACTION, cwd=user_repo).returncode == 0
    workflows = user_repo / ".github" / "workflows"
    z = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", str(workflows)], capture_output=True, text=True)
    assert z.returncode == 0, z.stdout + z.stderr
    for wf in workflows.glob("*.yml"):
        c = subprocess.run(
            [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(wf)],
            capture_output=True,
            text=True,
        )
        assert c.returncode == 0, c.stdout
    ours = "\n".join(w.read_text() for w in WORKFLOWS)
    for pinned in (scaffold.CHECKOUT, scaffold.UPLOAD_ARTIFACT, scaffold.DOWNLOAD_ARTIFACT, scaffold.SETUP_PYTHON):
        assert pinned in ours, f"{pinned} is not how this repository's own workflows pin it"


def test_init_never_replaces_anything(user_repo):
    (user_repo / ".github" / "workflows").mkdir(parents=True)
    mine = user_repo / ".github" / "workflows" / "quantgate.yml"
    mine.write_text("name: mine\n")
    before = {p: p.read_bytes() for p in user_repo.rglob("*") if p.is_file()}
    proc = run_cli("init", "--action", ACTION, cwd=user_repo)
    assert_one_line_error(proc, ".github/workflows/quantgate.yml already exists", "never replaces a file")
    after = {p: p.read_bytes() for p in user_repo.rglob("*") if p.is_file()}
    assert after == before  # nothing at all was written, not even the registry
    # a set-up repository: [tool.quantgate] already there
    mine.unlink()
    (user_repo / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.quantgate]\nregistry = "r.json"\n')
    assert_one_line_error(run_cli("init", "--action", ACTION, cwd=user_repo), "already has [tool.quantgate]")
    assert not (user_repo / "quantgate.json").exists()


def test_init_pins_only_a_commit_it_knows(user_repo):
    assert_one_line_error(run_cli("init", "--action", "acme/quantgate@v1", cwd=user_repo), "--action", "40-hex")
    unknown = run_cli("init", cwd=user_repo, env={"GITHUB_ACTION_REPOSITORY": "", "QUANTGATE_SOURCE_REPOSITORY": ""})
    if unknown.returncode == 0:  # this install recorded its repository and commit (a pip install from git)
        assert re.search(
            r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40}", (user_repo / ".github/workflows/quantgate.yml").read_text()
        )
    else:
        assert_one_line_error(unknown, "--action: cannot tell which repository and commit", "--no-workflow")
    # with no workflow, nothing needs pinning; an existing pyproject.toml gets the table appended
    (user_repo / "pyproject.toml").write_text('[project]\nname = "x"')
    proc = run_cli("init", "--no-workflow", "--registry", "models/registry.json", cwd=user_repo)
    assert proc.returncode == 0, proc.stderr
    assert not (user_repo / ".github").exists()
    assert (user_repo / "pyproject.toml").read_text() == (
        '[project]\nname = "x"\n\n[tool.quantgate]\nregistry = "models/registry.json"  # written by quantgate init; '
        "see docs/cli.md\n"
    )
    reg = json.loads((user_repo / "models" / "registry.json").read_text())
    assert {e["onnx"] for e in reg["models"]} == {"a/scorer.onnx", "b/scorer.onnx", "ranker.onnx", "big.onnx"}


def test_adopt_walk_through_validate_choose_produce_gate(user_repo):
    """docs/adopt.md's steps on a fresh repository: init, validate, choose a mode with
    --set-mode, gate; then the sidecar's digest is in the registry and the gate passes."""
    (user_repo / "models" / "big.onnx").unlink()
    assert run_cli("init", "--no-workflow", cwd=user_repo).returncode == 0
    assert run_cli("validate", cwd=user_repo).returncode == 0
    made = run_cli("ptq-dynamic", "models/ranker.onnx", "--registry-id", "ranker", "--set-mode", cwd=user_repo)
    assert made.returncode == 0, made.stderr
    assert "quantgate.json: set ranker.quant_mode = dynamic" in made.stdout
    gate = run_cli("gate", "--samples", "64", cwd=user_repo)
    assert gate.returncode == 0 and "[PASS ] ranker (dynamic)" in gate.stdout, gate.stdout
    assert "[SKIP ] 2 fp32 entries not gated" in gate.stdout


def test_pyproject_configuration(repo):
    fp32 = modelzoo.mlp(repo / "m", name="scorer")
    reg = repo / "conf" / "registry.json"
    reg.parent.mkdir()
    reg.write_text(json.dumps({"models": [{"id": "s", "onnx": "../m/scorer.onnx", "quant_mode": "dynamic"}]}))
    assert run_cli("ptq-dynamic", fp32, cwd=repo).returncode == 0
    py = repo / "pyproject.toml"
    py.write_text('[tool.quantgate]\nregistry = "conf/registry.json"\n\n[tool.quantgate.gate]\nsamples = 40\n')
    deep = repo / "m"
    proc = run_cli("gate", "--json-out", "r.json", "-vv", cwd=deep)  # paths relative to pyproject's folder
    assert proc.returncode == 0, proc.stderr
    assert "quantgate: defaults from [tool.quantgate] in" in proc.stderr
    assert json.loads((deep / "r.json").read_text())["settings"]["samples"] == 40
    assert run_cli("gate", "--samples", "32", "--json-out", "r.json", cwd=deep).returncode == 0  # the option wins
    assert json.loads((deep / "r.json").read_text())["settings"]["samples"] == 32
    assert "[default: ../conf/registry.json]" in " ".join(run_cli("gate", "--help", cwd=deep).stdout.split())

    # a command's own table wins over the top-level key, whichever comes first in the file
    (repo / "conf" / "empty.json").write_text(json.dumps({"models": []}))
    py.write_text(
        '[tool.quantgate.gate]\nregistry = "conf/empty.json"\n\n[tool.quantgate]\nregistry = "conf/registry.json"\n'
    )
    assert run_cli("gate", cwd=deep).stdout.startswith("quantgate: NOTHING GATED — no entry selected")
    assert run_cli("validate", cwd=deep).stdout.startswith("../conf/registry.json: ok")
    py.write_text("[tool.quantgate.gate]\nsampels = 24\n")
    assert_one_line_error(
        run_cli("gate", cwd=deep), "pyproject.toml: [tool.quantgate.gate] sampels: is not an option of quantgate gate"
    )
    py.write_text('[tool.quantgate]\nregistyr = "x"\n')
    assert_one_line_error(run_cli("validate", cwd=deep), "[tool.quantgate] registyr: is not a [tool.quantgate] key")
    py.write_text('[tool.quantgate.gate]\nsamples = "many"\n')
    assert_one_line_error(run_cli("gate", cwd=deep), "[tool.quantgate.gate] samples:", "not a valid integer")
    py.write_text("[tool.quantgate\n")
    assert_one_line_error(run_cli("gate", cwd=deep), "pyproject.toml: not valid TOML")
    py.write_text('[project]\nname = "x"\n')  # a pyproject without the table: the defaults
    assert "model/tiny/registry.json" in run_cli("gate", cwd=deep).stderr


def test_repository_metadata_is_read_from_pip_not_assumed(tmp_path, monkeypatch):
    """The repository a workflow or a reproduce line names comes from what pip recorded."""
    from quantgate import provenance

    class Dist:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            return self.text if name == "direct_url.json" else None

    from importlib import metadata

    record = {
        "url": "https://github.com/Acme/QG.git",
        "vcs_info": {"vcs": "git", "commit_id": SHA, "requested_revision": "v1"},
    }
    monkeypatch.setattr(metadata, "distribution", lambda _name: Dist(json.dumps(record)))
    assert provenance.quantgate_source({}) == {"repository": "Acme/QG", "ref": "v1", "commit": SHA, "from": "pip"}
    record["url"] = "https://gitlab.example/a/b.git"
    monkeypatch.setattr(metadata, "distribution", lambda _name: Dist(json.dumps(record)))
    assert provenance.quantgate_source({})["repository"] is None
    # an editable install: its checkout's origin and HEAD
    checkout = tmp_path / "qg"
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    subprocess.run(
        ["git", "-C", str(checkout), "remote", "add", "origin", "git@github.com:acme/quantgate.git"], check=True
    )
    subprocess.run(
        [
            "git",
            "-C",
            str(checkout),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        check=True,
    )
    head = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    editable = {"url": checkout.as_uri(), "dir_info": {"editable": True}}
    monkeypatch.setattr(metadata, "distribution", lambda _name: Dist(json.dumps(editable)))
    assert provenance.quantgate_source({}) == {
        "repository": "acme/quantgate",
        "ref": head,
        "commit": head,
        "from": "checkout",
    }
