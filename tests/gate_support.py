"""Helpers and fixtures shared by the unit and CLI tests of gate."""

import json

import jsonschema

import modelzoo
from conftest import write_registry
from quantgate.gate import run_gate
from quantgate.schema import load_schema


def perturbed_sidecar(fp32, scale=0.01, seed=0):
    """A stand-in int8 file: the same graph with its float weights nudged and one stored as int8
    (the gate only needs a second model with the same signature holding an int8 op; quantisers do
    not handle every dtype)."""
    return modelzoo.int8_standin(fp32, scale=scale, seed=seed)


def gate_row(repo, fp32, model_id="m", **fields):
    """Gate one model through a one-entry registry and return its row."""
    reg = write_registry(
        repo / "registry.json", [{"id": model_id, "onnx": fp32.name, "quant_mode": "dynamic", **fields}]
    )
    return run_gate(reg).to_json()["models"][0]


def _validate_results(results):
    jsonschema.validate(results, load_schema("results.schema.json"))
    json.dumps(results, allow_nan=False)  # no NaN/inf sneaks into the document


def fake_clock(monkeypatch) -> list[float]:
    """The sampling clock (gate/steps.py) made a list the test advances: clock[0] is the time in
    seconds."""
    from quantgate.gate import steps

    clock = [0.0]

    class FakeTime:
        @staticmethod
        def perf_counter():
            return clock[0]

    monkeypatch.setattr(steps, "time", FakeTime)
    return clock
