"""Project configuration: `[tool.quantgate]` in the nearest pyproject.toml.

    [tool.quantgate]
    registry = "models/registry.json"   # every command's --registry
    root = "."                          # every command's --root

    [tool.quantgate.gate]               # any option of `quantgate gate`, by its long name
    samples = 512
    json-out = "quantgate-results.json"

    [tool.quantgate."calibrate.build"]  # a subcommand: the group and command joined by a dot
    seed = 1

The nearest pyproject.toml at or above the current folder is read (as pytest and ruff do); one
without a `[tool.quantgate]` table means no configuration. Paths are relative to the folder
that holds the pyproject.toml, wherever the command runs. An option given on the command line
wins over the file. A key the commands do not know is one error line naming the file, the key
and what is known, exit 2.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..errors import UserError

FILE = "pyproject.toml"
# keys of the top-level table, applied to every command that has the option
SHARED = ("registry", "root")


@dataclass
class Config:
    path: Path
    default_map: dict[str, Any]


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above `start`."""
    here = start.resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILE
        if candidate.is_file():
            return candidate
    return None


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out.update(_commands(cmd, full + "."))
        else:
            out[full] = cmd
    return out


def _option(cmd: click.Command, key: str) -> click.Parameter | None:
    """The option of `cmd` a configuration key names: its long name without dashes, or its
    parameter name."""
    wanted = key.replace("_", "-")
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.hidden or p.expose_value is False:
            continue
        longs = [o[2:] for o in p.opts if o.startswith("--")]
        if wanted in longs or key == p.name:
            return p
    return None


def _known(cmd: click.Command) -> list[str]:
    return sorted(
        o[2:]
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden and p.expose_value is not False
        for o in p.opts
        if o.startswith("--")
    )


def _value(p: click.Parameter, raw: Any, base: Path, where: str, cwd: Path) -> Any:
    """`raw` as the option takes it; a path relative to the pyproject's folder, given relative
    to the current folder (how the command shows it)."""
    if isinstance(p.type, click.Path) and isinstance(raw, str) and raw != "-":
        target = raw if os.path.isabs(raw) else os.path.normpath(base / raw)
        return os.path.relpath(target, cwd) if not os.path.isabs(raw) else raw
    if isinstance(raw, (dict, list)) and not p.multiple:
        raise UserError(f"expected one value, got {type(raw).__name__}", subject=where, fix="give a single value")
    try:
        with click.Context(click.Command("config")) as ctx:
            p.type_cast_value(ctx, raw)
    except click.BadParameter as e:
        raise UserError(e.format_message(), subject=where, fix="give a value the option takes") from None
    return raw


def load(group: click.Group, cwd: Path | None = None) -> Config | None:
    """The configuration for `group`'s commands, or None when no pyproject.toml has one."""
    cwd = (cwd or Path.cwd()).resolve()
    path = find_pyproject(cwd)
    if path is None:
        return None
    shown = os.path.relpath(path, cwd)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot be read ({type(e).__name__})", subject=shown, fix="fix or remove the file") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"not valid TOML ({e})", subject=shown, fix="fix the syntax there") from None
    table = (data.get("tool") or {}).get("quantgate") if isinstance(data.get("tool"), dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UserError("must be a table", subject=f"{shown}: [tool.quantgate]", fix="write [tool.quantgate] keys")
    base = path.parent
    commands = _commands(group)
    out: dict[str, Any] = {}

    def put(command: str, key: str, value: Any) -> None:
        node = out
        for part in command.split("."):
            node = node.setdefault(part, {})
        node[key] = value

    for key, value in table.items():  # the shared keys first: a command's own table wins
        if isinstance(value, dict):
            continue
        if key not in SHARED:
            raise UserError(
                "is not a [tool.quantgate] key",
                subject=f"{shown}: [tool.quantgate] {key}",
                fix=f"use {' or '.join(SHARED)} here, and command options in [tool.quantgate.COMMAND] tables",
            )
        for name, cmd in commands.items():
            p = _option(cmd, key)
            if p is not None and p.name is not None:
                put(name, p.name, _value(p, value, base, f"{shown}: [tool.quantgate] {key}", cwd))
    for key, value in table.items():  # [tool.quantgate.<command>]
        if not isinstance(value, dict):
            continue
        found = commands.get(key)
        if found is None:
            raise UserError(
                "is not a quantgate command",
                subject=f"{shown}: [tool.quantgate.{key}]",
                fix=f"name one of {', '.join(sorted(commands))}",
            )
        cmd = found
        for opt_key, opt_value in value.items():
            where = f"{shown}: [tool.quantgate.{key}] {opt_key}"
            p = _option(cmd, opt_key)
            if p is None:
                raise UserError(
                    f"is not an option of quantgate {key.replace('.', ' ')}",
                    subject=where,
                    fix=f"use one of {', '.join(_known(cmd))}",
                )
            assert p.name is not None
            put(key, p.name, _value(p, opt_value, base, where, cwd))
    return Config(path, out)
