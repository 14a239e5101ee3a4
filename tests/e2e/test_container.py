"""The action's image, built and run by a real Docker engine the way the runner runs it.

One image build per test session (module fixture). Each test starts the container with what
the runner provides: INPUT_* and GITHUB_* variables, the workspace mounted at
/github/workspace (the working directory), GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files under a
mounted /github/file_commands, and the event payload under /github/workflow.

Without a reachable engine every test here is skipped with a loud reason, never passed, and
fails under CI=true: start one with `bash scripts/docker-engine.sh start` (CI's .ci/run does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import require_tool
from quantgate.action.settings import input_env_name

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SHIPPED_REGISTRY = "model/tiny/registry.json"
ENGINE_SOCKET = Path(os.environ.get("QUANTGATE_DOCKER_DIR", "/tmp/quantgate-docker")) / "docker.sock"
# Overridable so that checkouts side by side on one engine do not build over each other.
IMAGE_TAG = os.environ.get("QUANTGATE_TEST_IMAGE", "quantgate:test")


def docker_client() -> tuple[str | None, dict]:
    """The docker client and the environment that reaches the engine scripts/docker-engine.sh
    started (its socket), else whatever engine DOCKER_HOST or the default socket names."""
    env = dict(os.environ)
    if "DOCKER_HOST" not in env and ENGINE_SOCKET.exists():
        env["DOCKER_HOST"] = f"unix://{ENGINE_SOCKET}"
    for candidate in (os.environ.get("QUANTGATE_DOCKER"), "/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate, env
    return None, env


def engine_error(stderr: str) -> str:
    """Why the client could not reach an engine, in its own words: with `--format`, some clients
    also print the Go template's failure on the empty answer (`template: :1:2: executing ...`),
    which says nothing to the reader, so that line is left out."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.lstrip().startswith("template:")]
    return next(
        (ln for ln in lines if "daemon" in ln.lower() or "connect" in ln.lower()), lines[0] if lines else "no answer"
    )


@pytest.fixture(scope="module")
def engine() -> tuple[str, dict]:
    client, env = docker_client()
    if client is None:
        require_tool(
            False,
            "NO DOCKER CLIENT: the container tests did NOT run "
            "(install one with `bash scripts/docker-engine.sh start`)",
        )
    try:
        proc = subprocess.run(
            [client, "info", "--format", "{{.ServerVersion}}"], env=env, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        proc = None
    if proc is None or proc.returncode != 0:
        why = "timed out" if proc is None else engine_error(proc.stderr)
        require_tool(
            False,
            f"NO DOCKER ENGINE ({why}): the container tests did NOT run; start one with "
            "`bash scripts/docker-engine.sh start`",
        )
    assert client is not None
    return client, env


@pytest.fixture(scope="module")
def image(engine) -> str:
    """Build the image once for the session, from the repository's own Dockerfile."""
    client, env = engine
    started = time.monotonic()
    proc = subprocess.run(
        [client, "build", "--tag", IMAGE_TAG, str(REPO)], env=env, capture_output=True, text=True, timeout=1200
    )
    if proc.returncode != 0:
        pytest.fail("docker build failed:\n" + "\n".join((proc.stdout + proc.stderr).splitlines()[-40:]))
    size = subprocess.run(
        [client, "image", "inspect", "--format", "{{.Size}}", IMAGE_TAG],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"\nbuilt {IMAGE_TAG} in {time.monotonic() - started:.0f} s; image size {int(size) / 1e6:.0f} MB")
    return IMAGE_TAG


@pytest.fixture(scope="module")
def shipped_models() -> Path:
    """The shipped example folder; its int8 sidecars must be there for the gate to judge them."""
    folder = REPO / "model" / "tiny"
    if not (folder / "registry.json").is_file():
        pytest.fail(f"{SHIPPED_REGISTRY} is missing from the checkout")
    return folder


def make_workspace(root: Path, models: Path) -> Path:
    """A throwaway copy of the repository's model folder: the container writes into it as root."""
    ws = root / "workspace"
    shutil.copytree(models, ws / "model" / "tiny", ignore=shutil.ignore_patterns("__pycache__"))
    return ws


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, files: Path, ws: Path):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.ws = ws
        self.outputs = parse_outputs((files / "set_output").read_text(encoding="utf-8"))
        self.summary = (files / "step_summary").read_text(encoding="utf-8")

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def parse_outputs(text: str) -> dict:
    out, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        ln = lines[i]
        if "<<" in ln and ("=" not in ln or ln.index("<<") < ln.index("=")):
            name, delim = ln.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1 : j])
            i = j + 1
            continue
        if ln:
            name, value = ln.split("=", 1)
            out[name] = value
        i += 1
    return out


def run_action(
    engine, image: str, ws: Path, tmp: Path, *, event_name: str = "push", event: dict | None = None, **inputs
) -> Run:
    """`docker run` as the runner does it for a `uses:` step of a Docker action."""
    client, env = engine
    files = tmp / f"file_commands-{uuid.uuid4().hex[:8]}"
    workflow = tmp / f"workflow-{uuid.uuid4().hex[:8]}"
    files.mkdir()
    workflow.mkdir()
    (files / "set_output").write_text("")
    (files / "step_summary").write_text("")
    (workflow / "event.json").write_text(json.dumps(event or {}))
    # every input action.yml declares with a default arrives, as the runner sends it: the
    # kebab-case ids as INPUT_JSON-OUT and the like (which a shell in between would drop)
    meta = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    declared = {k: str(v["default"]) for k, v in meta["inputs"].items() if "default" in v}
    declared.update({"registry": SHIPPED_REGISTRY, "github-token": "ghs_not_a_real_token"})
    declared.update(inputs)
    run_env = {input_env_name(k): v for k, v in declared.items()}
    run_env.update(
        {
            "HOME": "/github/home",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": "/github/workspace",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": "/github/workflow/event.json",
            "GITHUB_OUTPUT": "/github/file_commands/set_output",
            "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
            "GITHUB_REPOSITORY": "octo/models",
            "GITHUB_SHA": "0" * 40,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "1",
            "RUNNER_OS": "Linux",
            "RUNNER_TEMP": "/github/runner_temp",
        }
    )
    cmd = [
        client,
        "run",
        "--rm",
        "--network",
        "none",
        "--workdir",
        "/github/workspace",
        "-v",
        f"{ws}:/github/workspace",
        "-v",
        f"{files}:/github/file_commands",
        "-v",
        f"{workflow}:/github/workflow",
    ]
    for name in run_env:
        cmd += ["-e", name]  # values pass through the environment, as the runner does it
    proc = subprocess.run([*cmd, image], env={**env, **run_env}, capture_output=True, text=True, timeout=600)
    return Run(proc, files, ws)


def host_results(ws: Path, registry: str) -> dict:
    """The same gate in this test process: the container must agree with it."""
    from quantgate.gate import run_gate

    return run_gate(ws / registry, [], root=ws, seed=0).to_json()


def assert_same_figures(host: list[dict], image: list[dict]) -> None:
    """Each model's status, sample count and drop, the same on both sides (numpy and onnx may be
    other releases on the host: they sum in float64, so a difference past 1e-9 is not theirs)."""
    figures = {r["id"]: (r["status"], r.get("samples"), r.get("drop")) for r in host}
    seen = {r["id"]: (r["status"], r.get("samples"), r.get("drop")) for r in image}
    assert seen.keys() == figures.keys()
    for mid, (status, n, drop) in figures.items():
        assert seen[mid][:2] == (status, n), (mid, figures[mid], seen[mid])
        if drop is None:
            assert seen[mid][2] is None, (mid, figures[mid], seen[mid])
        else:
            assert seen[mid][2] == pytest.approx(drop, rel=1e-9, abs=1e-12), (mid, figures[mid], seen[mid])


def test_the_figure_comparison_fails_on_any_difference():
    """The comparison above bites: another drop, count or status fails it (runs without an engine)."""
    rows = [{"id": "a", "status": "pass", "samples": 2048, "drop": 0.0083}, {"id": "b", "status": "error"}]
    assert_same_figures(rows, [dict(r) for r in rows])
    for changed in ({"drop": 0.00830001}, {"samples": 4096}, {"status": "fail"}):
        with pytest.raises(AssertionError):
            assert_same_figures(rows, [{**rows[0], **changed}, rows[1]])
    with pytest.raises(AssertionError):
        assert_same_figures(rows, rows[:1])


def test_passing_registry(engine, image, shipped_models, tmp_path):
    ws = make_workspace(tmp_path, shipped_models)
    r = run_action(engine, image, ws, tmp_path)
    expected = host_results(ws, SHIPPED_REGISTRY)
    assert expected["verdict"] == "pass", "the shipped registry does not pass on the host either: " + "; ".join(
        f"{m['id']}: {m['status']} {m['reason']}" for m in expected["models"]
    )
    assert r.code == 0, r
    o = r.outputs
    assert o["verdict"] == "pass", r
    c = expected["counts"]
    assert (o["passed"], o["failed"], o["errored"], o["skipped"], o["total"]) == tuple(
        str(c[k]) for k in ("pass", "fail", "error", "skipped", "total")
    )
    assert o["results_path"] == "quantgate-results.json" and o["markdown_path"] == "quantgate-results.md"
    results = json.loads((ws / o["results_path"]).read_text())
    assert results["verdict"] == "pass" and results["registry"] == SHIPPED_REGISTRY
    # same ONNX Runtime (pyproject.toml pins the image's, tests/unit/test_pins.py), same inputs,
    # same CPU: the container measures what the host measures, model by model
    mine, theirs = expected["run_provenance"]["versions"], results["run_provenance"]["versions"]
    assert mine["onnxruntime"] == theirs["onnxruntime"], f"host {mine}, image {theirs}"
    assert float(o["worst_drop"]) == pytest.approx(expected["worst_drop"], rel=1e-9, abs=1e-12)
    assert_same_figures(expected["models"], results["models"])
    for row in results["models"]:
        assert f"`{row['id']}`" in r.summary
    assert r.summary == (ws / o["markdown_path"]).read_text()
    assert "::error" not in r.stdout and "Traceback" not in r.stdout + r.stderr
    assert "no pull request" in r.stdout  # a push: no comment attempted
    assert results["run_provenance"]["git"]["commit"] == "0" * 40


def test_violated_budget_on_a_pull_request(engine, image, shipped_models, tmp_path):
    ws = make_workspace(tmp_path, shipped_models)
    reg_path = ws / SHIPPED_REGISTRY
    reg = json.loads(reg_path.read_text())
    for m in reg["models"]:
        m["quant_accuracy_budget_plcc"] = 0.0
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    gated = [m["id"] for m in reg["models"] if m.get("quant_mode", "fp32") != "fp32"]
    event = {"action": "synchronize", "number": 12, "pull_request": {"number": 12}}

    r = run_action(
        engine,
        image,
        ws,
        tmp_path,
        event_name="pull_request",
        event=event,
        **{"json-out": "reports/results.json", "markdown-out": "reports/results.md"},
    )
    assert r.code == 1, r
    o = r.outputs
    assert o["verdict"] == "fail" and int(o["failed"]) >= 1 and o["errored"] == "0", r
    assert o["results_path"] == "reports/results.json"
    results = json.loads((ws / "reports" / "results.json").read_text())
    lines = {m["id"]: m["registry_line"] for m in results["models"]}
    errors = [ln for ln in r.stdout.splitlines() if ln.startswith("::error ")]
    failing = [m for m in results["models"] if m["status"] == "fail"]
    assert len(errors) == min(len(failing), 10)
    for m in failing[:10]:
        assert any(f"file={SHIPPED_REGISTRY},line={lines[m['id']]}," in ln and m["id"] in ln for ln in errors), (
            m["id"],
            errors,
        )
    assert set(m["id"] for m in failing) <= set(gated)
    assert "❌" in r.summary and "over its accuracy budget" in r.summary
    # comment is on and this is a PR; with no network the comment cannot be posted: a warning
    # only, and the exit code stays the gate's
    assert "::warning title=quantgate comment::" in r.stdout, r

    # quantgate 0.1's snake_case id, beside the kebab-case one holding its default: still read
    r2 = run_action(engine, image, ws, tmp_path, fail_on_violation="false", comment="false")
    assert r2.code == 0, r2
    assert "input fail_on_violation is now fail-on-violation" in r2.stderr, r2
    assert r2.outputs["verdict"] == "fail" and r2.outputs["failed"] == o["failed"]


def test_user_mistake_is_one_line_and_exit_2(engine, image, shipped_models, tmp_path):
    ws = make_workspace(tmp_path, shipped_models)
    r = run_action(engine, image, ws, tmp_path, registry="../../etc/passwd")
    assert r.code == 2, r
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("quantgate: error: input registry"), r
    assert r.outputs["verdict"] == "error"
    assert "could not run the gate" in r.summary


def test_plain_docker_run_reproduces_locally(engine, image, shipped_models, tmp_path):
    """The README's reproduction: no runner, just the workspace mounted."""
    client, env = engine
    ws = make_workspace(tmp_path, shipped_models)
    proc = subprocess.run(
        [
            client,
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{ws}:/github/workspace",
            "-w",
            "/github/workspace",
            image,
            "--comment",
            "false",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == host_results(ws, SHIPPED_REGISTRY)["exit_code"], proc.stdout + proc.stderr
    assert "| model | status |" in proc.stdout and "::" not in proc.stdout
    assert (ws / "quantgate-results.json").is_file()


def test_image_holds_no_compiler_or_torch(engine, image):
    client, env = engine
    probe = (
        "for c in gcc cc g++ make pip; do command -v $c && exit 1; done; "
        "python -c 'import importlib.util as u, sys; "
        'sys.exit(any(u.find_spec(m) for m in ("torch", "setuptools")))\' && '
        "quantgate --version"
    )
    proc = subprocess.run(
        [client, "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "quantgate" in proc.stdout


def test_image_draws_the_pictures(engine, image, shipped_models, tmp_path):
    """matplotlib is in the image: `--plots` works there as on the host."""
    client, env = engine
    ws = make_workspace(tmp_path, shipped_models)
    proc = subprocess.run(
        [
            *(client, "run", "--rm", "--network", "none", "-v", f"{ws}:/github/workspace", "-w", "/github/workspace"),
            *("--entrypoint", "/opt/quantgate/bin/quantgate", image),
            # 64 samples leave nr_metric_v1 marginal (a fail by default): the pictures are the point here
            *("gate", "nr_metric_v1", "--registry", SHIPPED_REGISTRY, "--samples", "64", "--on-marginal", "warn"),
            *("--plots", "plots"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("nr_metric_v1.scatter.png", "nr_metric_v1.error.png"):
        assert (ws / "plots" / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name


def test_a_skip_for_a_missing_engine_reads_as_a_reason_not_a_template_error():
    """What a skipped container test says when no engine answers: the client's own words, never
    the Go template error some clients add for `--format` (this runs with or without an engine)."""
    both = (
        'template: :1:2: executing "" at <.ServerVersion>: reflect: indirection through nil pointer to embedded '
        "struct field Info\nCannot connect to the Docker daemon at unix:///tmp/x.sock. Is the docker daemon running?\n"
    )
    assert (
        engine_error(both) == "Cannot connect to the Docker daemon at unix:///tmp/x.sock. Is the docker daemon running?"
    )
    assert engine_error("template: only this\n") == "no answer" and engine_error("") == "no answer"


def test_release_dry_run_builds_smoke_tests_and_makes_the_release_commit(engine, image, tmp_path):
    """scripts/release.sh --dry-run, in a fresh clone of this commit: the tag is checked against
    pyproject.toml and CHANGELOG.md, the image is built with its build metadata and smoke-tested
    as the runner starts it, and the release commit pointing action.yml at the image is made in a
    scratch clone; nothing is pushed and the checkout is left as it was."""
    client, env = engine
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(REPO), str(clone)], check=True)
    # the working tree as it is (the clone holds the last commit; the test may run before a commit)
    for rel in subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split():
        if (REPO / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, clone / rel)
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "--allow-empty", "-m", "wt"],
        cwd=clone,
        check=True,
    )
    import tomllib

    version = "v" + tomllib.loads((clone / "pyproject.toml").read_text())["project"]["version"]
    run_env = {**env, "DOCKER": client, "GITHUB_REPOSITORY": "Acme/QuantGate"}
    run_env.pop("GH_TOKEN", None)
    before = (clone / "action.yml").read_text()
    tag = f"ghcr.io/acme/quantgate:{version}"
    try:
        proc = subprocess.run(
            ["bash", "scripts/release.sh", "--dry-run", version],
            cwd=clone,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
        assert f"would push {tag} and ghcr.io/acme/quantgate:{version.split('.')[0]}" in out
        assert "smoke test passed (verdict=pass" in out and "nothing was pushed" in out
        assert f"action.yml: image: docker://{tag})" in out
        inspect = subprocess.run(
            [client, "image", "inspect", "--format", "{{json .Config.Labels}} {{json .Config.Env}}", tag],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert '"org.opencontainers.image.source":"https://github.com/Acme/QuantGate"' in inspect
        assert f'"org.opencontainers.image.version":"{version}"' in inspect
        assert "QUANTGATE_SOURCE_REPOSITORY=Acme/QuantGate" in inspect and f"QUANTGATE_SOURCE_REF={version}" in inspect
        assert (clone / "action.yml").read_text() == before  # the commit went to a scratch clone
        assert "v0" not in subprocess.run(["git", "tag"], cwd=clone, capture_output=True, text=True).stdout.split()

        # a tag that is not the package's version is refused before anything is built
        wrong = subprocess.run(
            ["bash", "scripts/release.sh", "--dry-run", "v9.9.9"],
            cwd=clone,
            env=run_env,
            capture_output=True,
            text=True,
        )
        assert wrong.returncode == 2 and "pyproject.toml says version" in wrong.stderr, wrong.stderr
    finally:
        for t in (tag, f"ghcr.io/acme/quantgate:{version.split('.')[0]}"):
            subprocess.run([client, "rmi", "--force", t], env=env, capture_output=True)
