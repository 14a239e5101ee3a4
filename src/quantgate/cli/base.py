"""What every command shares: one-line errors with exit code 2, and library parameter names
worded as this command's `--flags`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from typing import Any, NoReturn

import click

from ..errors import EXIT_ERROR, UserError, one_line
from ..text import log_line, no_command, plain
from . import streams

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


_VERBOSITY = "quantgate.verbosity"
CONFIG = "quantgate.config"  # the pyproject.toml the defaults came from


def verbosity() -> int:
    """0 with -q, 1 by default, 2 and up with -v, -vv."""
    ctx = click.get_current_context(silent=True)
    return int(ctx.meta.get(_VERBOSITY, 1)) if ctx is not None else 1


def _quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_VERBOSITY] = 0


def _verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        ctx.meta[_VERBOSITY] = 1 + value


def echo(text: str = "", *, err: bool = False, level: int = 1) -> None:
    """Print lines that may hold data (ids, paths, reasons): each line one visible line, so
    nothing a registry or model holds can start a line of its own (a workflow command, say).
    Lines of a `level` above the verbosity are not printed."""
    if verbosity() < level:
        return
    click.echo("\n".join(log_line(line) for line in str(text).split("\n")), err=err)


_COLOR = "quantgate.color"
COLOR_CHOICES = ("auto", "always", "never")


def use_color() -> bool | None:
    """Whether to colour: `--color always|never` wins; else NO_COLOR (any value) turns colour
    off, then FORCE_COLOR or CLICOLOR_FORCE (any value but 0) turns it on; else None lets click
    decide (colour on a terminal, none when piped). NO_COLOR winning over FORCE_COLOR is pytest's
    order too."""
    ctx = click.get_current_context(silent=True)
    choice = ctx.meta.get(_COLOR, "auto") if ctx is not None else "auto"
    if choice != "auto":
        return choice == "always"
    env = os.environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "0") not in ("", "0") or env.get("CLICOLOR_FORCE", "0") not in ("", "0"):
        return True
    return None


def _color(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_COLOR] = value


def styled(text: str, **style: Any) -> str:
    return text if use_color() is False else click.style(text, **style)


def echo_styled(text: str, *, err: bool = False) -> None:
    """A line already made safe (see `echo`) with colour codes of our own: printed as is, the
    codes dropped when the output is not a terminal or NO_COLOR is set."""
    click.echo("\n".join(no_command(line) for line in text.split("\n")), err=err, color=use_color())


_ALIASES = "quantgate.aliases"
_warned_aliases: set[str] = set()


class Renamed(click.Option):
    """An option's old name, kept working: hidden from `--help`, it sets the option now called
    `new` (its parameter name) and says once per run that the name changed. Giving both is a
    usage error."""

    def __init__(self, param_decls: list[str], *, new: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", None)
        # a name of its own: sharing the new option's would hand it that option's value
        decls = [*param_decls, "renamed_" + param_decls[0].lstrip("-").replace("-", "_")]
        super().__init__(decls, hidden=True, expose_value=False, callback=self._store, **kwargs)
        self.new = new

    def _store(self, ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is None or value == () or value is False:
            return
        ctx.meta.setdefault(_ALIASES, []).append((self, value))


def renamed(old: str | list[str], new: str, **kwargs: Any):
    """Decorator: keep `old` (one name or several) as a hidden alias of the option `new`."""
    names = [old] if isinstance(old, str) else list(old)
    return click.option(*names, cls=Renamed, new=new, **kwargs)


def apply_aliases(command: click.Command, ctx: click.Context) -> None:
    """Move the values given under old option names to their new names (before the command runs)."""
    from click.core import ParameterSource

    for opt, value in ctx.meta.get(_ALIASES, []):
        target = next((p for p in command.params if p.name == opt.new), None)
        if target is None:  # a programming mistake in the declaration
            raise RuntimeError(f"{opt.opts[0]} renames {opt.new}, which {command.name} does not have")
        old_flag = opt.opts[0]
        new_flag = flag_for(command, opt.new)
        if ctx.get_parameter_source(opt.new) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            raise click.UsageError(f"{old_flag} is the old name of {new_flag}; give one of them", ctx=ctx)
        ctx.params[opt.new] = value
        warn_renamed(old_flag, new_flag)


def warn_renamed(old: str, new: str) -> None:
    """Say once per run that an option's name changed."""
    if old in _warned_aliases:
        return
    _warned_aliases.add(old)
    echo(
        f"quantgate: warning: {old} is now {new}; the old name still works and will be "
        "removed in quantgate 1.0 (docs/cli.md#option-names)",
        err=True,
    )


class Status:
    """One line on standard error that says what is going on now (`[2/5] measuring nr_metric_v1…`),
    rewritten in place and cleared before the next line is printed. Only on a terminal: in a log
    or a pipe it prints nothing (the lines that follow say the same)."""

    def __init__(self) -> None:
        self.shown = False

    def show(self, text: str) -> None:
        stream = sys.stderr
        if not stream.isatty():
            return
        stream.write("\r\x1b[K" + plain(text))
        stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 2: how every user mistake ends (whatever the verbosity)."""
    click.echo(log_line(f"quantgate: error: {message}"), err=True)
    sys.exit(EXIT_ERROR)


def flag_for(command: click.Command, name: str) -> str:
    """How `command` spells the library parameter `name`: its long option, or its argument."""
    for p in command.params:
        if p.name == name:
            if isinstance(p, click.Option):
                longs = [o for o in p.opts if o.startswith("--")]
                return longs[0] if longs else p.opts[0]
            return p.human_readable_name
    return "--" + name.replace("_", "-")


class WordedError(click.ClickException):
    """A `UserError` already worded for the command that raised it."""

    def __init__(self, message: str):
        super().__init__(message)


class Command(click.Command):
    """A command whose `UserError`s name its own options (`--samples`, not `samples`), with
    `-q/--quiet`, `-v/--verbose` and `--color` like every other command, and old option names
    kept as hidden aliases (`alias`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params += [
            click.Option(
                ["-q", "--quiet"],
                is_flag=True,
                expose_value=False,
                callback=_quiet,
                help="Print only the result (and errors).",
            ),
            click.Option(
                ["-v", "--verbose"],
                count=True,
                expose_value=False,
                callback=_verbose,
                help="Print more detail (repeat for more).",
            ),
            click.Option(
                ["--color"],
                type=click.Choice(COLOR_CHOICES),
                default=None,
                expose_value=False,
                callback=_color,
                metavar="WHEN",
                help="Colour: auto (on a terminal), always, never. Default: auto; NO_COLOR, FORCE_COLOR and "
                "CLICOLOR_FORCE are honoured.",
            ),
        ]

    def invoke(self, ctx: click.Context) -> Any:
        from .. import progress

        apply_aliases(self, ctx)
        if ctx.meta.get(CONFIG) is not None:
            echo(f"quantgate: defaults from [tool.quantgate] in {ctx.meta[CONFIG]}", err=True, level=2)
        if verbosity() >= 1:
            progress.enable()  # long loops (thousands of images) say how far they are, on stderr
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise WordedError(e.render(lambda n: flag_for(self, n))) from None
        finally:
            progress.disable()


class Group(click.Group):
    command_class = Command

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_class = Group


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that every `finally` runs: temporary files and
    folders go, and no half-written output is left behind."""


_terminated = False


def _on_sigterm(signum, frame) -> NoReturn:
    global _terminated
    _terminated = True  # an import the signal lands in turns it into an ImportError: remember it
    raise Terminated()


class Main(Group):
    """The top-level group: turns user mistakes (bad options, UserError) into one line and exit
    code 2, an interrupt into 130, SIGTERM into 143 after cleaning up, and a bug into one line
    and exit 2 ("could not judge"), never 1 ("over budget")."""

    def make_context(self, info_name, args, parent=None, **extra):
        """`[tool.quantgate]` of the nearest pyproject.toml as the commands' defaults."""
        from . import config

        found = config.load(self)
        if found is not None:
            extra.setdefault("default_map", found.default_map)
        ctx = super().make_context(info_name, args, parent=parent, **extra)
        ctx.meta[CONFIG] = found.path if found is not None else None
        return ctx

    def main(self, args=None, prog_name=None, **kwargs):  # type: ignore[override]
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            signal.signal(signal.SIGTERM, _on_sigterm)
        streams.guard()  # a reader that goes away never turns into exit 1 (see streams.py)
        try:
            rv = super().main(args=args, prog_name=prog_name or "quantgate", standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            echo("quantgate: aborted", err=True, level=0)
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as e:  # a bare `quantgate` (or group): its usage, plainly
            click.echo(e.ctx.get_help() if e.ctx else self.get_help(click.Context(self)))
            sys.exit(0)
        except click.UsageError as e:
            cmd = e.ctx.command_path if e.ctx else "quantgate"
            fail(f"{e.format_message()} (see '{cmd} --help')")
        except click.ClickException as e:
            fail(e.format_message())
        except UserError as e:
            fail(str(e))
        except KeyboardInterrupt:
            echo("quantgate: interrupted", err=True, level=0)
            sys.exit(130)
        except Terminated:
            echo("quantgate: terminated", err=True, level=0)
            sys.exit(143)
        except Exception as e:
            if _terminated:
                echo("quantgate: terminated", err=True, level=0)
                sys.exit(143)
            if os.environ.get("QUANTGATE_DEBUG"):
                traceback.print_exc()
            fail(
                f"internal error ({type(e).__name__}: {one_line(e, 200)}); this is a bug in quantgate, please "
                "report it (QUANTGATE_DEBUG=1 shows the traceback)"
            )
        code = rv if isinstance(rv, int) else 0
        # the run finished (every model measured, every file written) but its reader left: say so
        # the way a shell does for a program the closed pipe killed, never with a verdict's code
        sys.exit(streams.EXIT_BROKEN_PIPE if streams.broken() else code)
