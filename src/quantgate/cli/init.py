"""`quantgate init`: set up a repository that has no quantgate yet."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import EXIT_PASS
from .base import Command, echo


@click.command(cls=Command)
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The repository to set up; .onnx files are searched below it.",
)
@click.option(
    "--registry",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the registry, relative to --root [default: quantgate.json].",
)
@click.option(
    "--action",
    metavar="OWNER/NAME@SHA",
    default=None,
    help="The quantgate action the workflow pins (default: the repository and commit this quantgate "
    "was installed from, when pip recorded them).",
)
@click.option("--no-workflow", is_flag=True, help="Write no GitHub workflow.")
@click.option(
    "--fork-comments/--no-fork-comments",
    default=True,
    show_default=True,
    help="Also write quantgate-comment.yml, the companion that posts the comment for pull requests from forks.",
)
def init(root: Path, registry: Path | None, action: str | None, no_workflow: bool, fork_comments: bool) -> int:
    """Set up quantgate in a repository: a registry of its .onnx files (all fp32, digests
    recorded), [tool.quantgate] in pyproject.toml, the GitHub workflow pinned by SHA, and
    .gitignore lines for the results files. Never replaces a file that exists.

    \b
    Examples:
      quantgate init
      quantgate init --registry models/registry.json --no-fork-comments
      quantgate init --action acme/quantgate@<40-hex commit>
    """
    from .. import scaffold
    from ..provenance import quantgate_source

    plan = scaffold.plan(
        root,
        registry or Path(scaffold.DEFAULT_REGISTRY),
        action=action,
        source=quantgate_source(),
        workflow=not no_workflow,
        companion=fork_comments,
    )
    written = scaffold.write(plan)
    shown = {p: (Path(root) / p).as_posix() if str(root) != "." else p.as_posix() for p in written}
    reg = shown[plan.registry]
    echo(f"wrote {reg}: {len(plan.models)} model(s), every one quant_mode fp32 with its sha256", level=0)
    for f in plan.models:
        for note in f.notes:
            echo(f"  note: {f.path.as_posix()}: {note}")
    for p in written:
        if p == plan.registry:
            continue
        what = {
            scaffold.WORKFLOW: f"the gate on every pull request, {plan.action}",
            scaffold.COMPANION: "posts the comment for pull requests from forks",
            Path("pyproject.toml"): "[tool.quantgate] registry, so no command needs --registry",
            Path(".gitignore"): "the results files",
        }.get(p, "")
        verb = "added to" if p in plan.appends else "wrote"
        echo(f"{verb} {shown[p]}" + (f" ({what})" if what else ""), level=0)
    first = plan.models[0].path.as_posix() if plan.models else "MODEL.onnx"
    first_id = scaffold.model_ids([f.path for f in plan.models])[0] if plan.models else "ID"
    echo(
        "next:\n"
        "  quantgate validate                                      # the registry, its files and models\n"
        f"  quantgate ptq-dynamic {first} --registry-id {first_id} --set-mode   # choose a mode per model\n"
        "  quantgate gate                                          # fp32 against int8, every chosen model\n"
        "  git add -A && git commit -m 'quantgate: registry and workflow'\n"
        "(docs/adopt.md walks through each step)",
        level=0,
    )
    return EXIT_PASS
