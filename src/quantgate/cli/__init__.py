"""The `quantgate` command line: argument handling only; every command calls the library.

Commands live in their own modules and are registered here, in one place.
"""

from __future__ import annotations

import click

from .action import action
from .base import CONTEXT_SETTINGS, Main
from .calibrate import calibrate
from .comment import comment
from .core import gate, validate
from .produce import ptq_dynamic, ptq_static
from .qat import qat


@click.group(cls=Main, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="quantgate", prog_name="quantgate")
def main() -> None:
    """Produce int8 ONNX sidecars of small models and gate their accuracy against fp32.

    Exit codes: 0 every gated model within budget, 1 at least one over budget,
    2 at least one could not be judged or the command was misused.
    """


for _command in (validate, ptq_dynamic, ptq_static, qat, calibrate, gate, comment, action):
    main.add_command(_command)

__all__ = ["main"]
