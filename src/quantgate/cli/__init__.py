"""The `quantgate` command line: argument handling only; every command calls the library.

Commands live in their own modules and are registered here, in one place.
"""

from __future__ import annotations

import click

from .action import action
from .auto import auto, explain
from .base import CONTEXT_SETTINGS, Main
from .calibrate import calibrate
from .comment import comment
from .core import gate, validate
from .init import init
from .produce import ptq_dynamic, ptq_static
from .qat import qat


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """quantgate's version and the versions its figures depend on."""
    if not value or ctx.resilient_parsing:
        return
    import platform

    import numpy
    import onnx
    import onnxruntime

    from .. import __version__

    click.echo(
        f"quantgate {__version__} (onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, "
        f"numpy {numpy.__version__}, Python {platform.python_version()})"
    )
    ctx.exit(0)


@click.group(cls=Main, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version, and the ONNX Runtime, onnx and numpy versions the figures depend on.",
)
def main() -> None:
    """Produce int8 ONNX sidecars of small models and gate their accuracy against fp32.

    Exit codes: 0 every gated model within budget, 1 at least one over budget,
    2 at least one could not be judged or the command was misused, 3 nothing was gated.
    """


for _command in (init, validate, ptq_dynamic, ptq_static, qat, calibrate, gate, auto, explain, comment, action):
    main.add_command(_command)

__all__ = ["main"]
