"""Helpers and fixtures shared by the unit and CLI tests of qat."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

MODEL_PY = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, n_features=4, hidden=16):
            super().__init__()
            self.fc1 = nn.Linear(n_features, hidden)
            self.fc2 = nn.Linear(hidden, 1)

        def forward(self, features):
            return self.fc2(F.relu(self.fc1(features)))

    def batch(n, g):
        x = torch.rand(n, 4, generator=g)
        return x, (x[:, :1] * 2 + torch.sin(3 * x[:, 1:2]) + x[:, 2:3] * x[:, 3:4])
""")


def write_case(tmp: Path, **over) -> Path:
    """A tiny model file, an .npz of training pairs and a config; `over` edits the config."""
    (tmp / "tiny_model.py").write_text(MODEL_PY)
    rng = np.random.default_rng(0)
    x = rng.random((512, 4), dtype=np.float32)
    y = (x[:, :1] * 2 + np.sin(3 * x[:, 1:2]) + x[:, 2:3] * x[:, 3:4]).astype(np.float32)
    np.savez(tmp / "train.npz", x=x, y=y)
    cfg = {
        "model": {"factory": "tiny_model.py:Tiny", "kwargs": {"hidden": 16}},
        "data": {"path": "train.npz", "inputs": ["x"], "target": "y"},
        "loss": "mse",
        "lr": 0.01,
        "batch_size": 64,
        "seed": 0,
        "qat": {
            "epochs_fp32": 3,
            "epochs_qat": 2,
            "input_names": ["features"],
            "output_names": ["score"],
            "n_calibration": 32,
        },
    }
    for dotted, value in over.items():
        *path, last = dotted.split("__")
        d = cfg
        for k in path:
            d = d[k]
        if value is _DELETE:
            d.pop(last)
        else:
            d[last] = value
    import yaml

    p = tmp / "qat.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


_DELETE = object()


def cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """`quantgate ARGS` (conftest.run_cli: in this process, unless `env` sets PYTHONPATH); `env`,
    when given, is the whole environment."""
    from conftest import run_cli

    return run_cli(*args, env=env, clean_env=env is not None, cwd=cwd)


def cli_inproc(capsys, *args):
    """The CLI in this process (no interpreter + torch start-up per case): (exit code, stdout, stderr)."""
    from quantgate.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main.main(args=list(args), prog_name="quantgate")
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def gate_pair(fp32: Path, int8: Path) -> dict:
    from quantgate.gate import GateSettings, gate_entry
    from quantgate.registry import Entry

    e = Entry(index=-1, raw={}, id=fp32.stem, mode="qat", budget=0.01, onnx_path=fp32, int8_path=int8)
    return gate_entry(e, GateSettings()).to_json()
