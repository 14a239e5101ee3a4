"""The host and the action's image compute with the same ONNX Runtime: a drop is ONNX Runtime's
arithmetic, and it moves between releases, so pyproject.toml pins the version the image's lock
installs, and the tests here run on it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from conftest import REPO


def _pyproject_pin(name: str) -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    specs = [d for d in deps if re.match(rf"{name}\s*[=<>!~ ]", d)]
    assert len(specs) == 1, specs
    m = re.fullmatch(rf"{name}\s*==\s*([^\s;,]+)", specs[0])
    assert m, f"pyproject.toml must pin {name} exactly (==), not {specs[0]!r}"
    return m.group(1)


def _lock_pin(name: str) -> str:
    text = (REPO / "docker" / "requirements.lock").read_text()
    found = re.findall(rf"^{name}==(\S+)\s*$", text, flags=re.MULTILINE)
    assert len(found) == 1, found
    return found[0]


def test_pyproject_pins_the_onnxruntime_of_the_image():
    assert _pyproject_pin("onnxruntime") == _lock_pin("onnxruntime")


def test_the_tests_run_on_the_pinned_onnxruntime():
    assert metadata.version("onnxruntime") == _pyproject_pin("onnxruntime")


def test_the_image_has_what_preprocess_imports():
    """`--preprocess` runs ONNX Runtime's quant_pre_process, whose symbolic shape inference
    imports sympy: a dependency of the package and pinned in the image, or the option fails
    for everyone who did not also install torch (which brings it)."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"sympy\s*[=<>!~ ]", d) for d in deps), deps
    assert _lock_pin("sympy") and _lock_pin("mpmath")
