"""The JSON schemas quantgate ships as package data (`schemas/`): the registry's and the results
document's. Read once each; every module that validates against one reads it from here."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def load_schema(name: str) -> dict:
    return json.loads(resources.files("quantgate").joinpath("schemas", name).read_text())
