"""The `quantgate` command line: argument handling only; every command calls the library."""

from __future__ import annotations

import sys

import click

from .errors import EXIT_ERROR, UserError


def fail(message: str) -> None:
    """One line on stderr, exit 2: how every user mistake ends."""
    click.echo(f"quantgate: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


class _Group(click.Group):
    """Turns user mistakes (bad options, UserError) into one line and exit code 2."""

    def main(self, args=None, prog_name=None, **kwargs):  # noqa: D401
        try:
            rv = super().main(args=args, prog_name=prog_name or "quantgate",
                              standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            click.echo("quantgate: aborted", err=True)
            sys.exit(130)
        except click.UsageError as e:
            cmd = e.ctx.command_path if e.ctx else "quantgate"
            fail(f"{e.format_message()} (see '{cmd} --help')")
        except click.ClickException as e:
            fail(e.format_message())
        except UserError as e:
            fail(str(e))
        except KeyboardInterrupt:
            click.echo("quantgate: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quantgate", prog_name="quantgate")
def main() -> None:
    """Produce int8 ONNX sidecars of small models and gate their accuracy against fp32.

    Exit codes: 0 every gated model within budget, 1 at least one over budget,
    2 at least one could not be judged or the command was misused.
    """


# Commands live in their own modules; each registers itself on `main` when imported.
from . import cli_core  # noqa: E402,F401
from . import cli_comment  # noqa: E402,F401
from . import cli_calibrate  # noqa: E402,F401
from . import cli_qat  # noqa: E402,F401
