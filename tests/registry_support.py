"""Helpers and fixtures shared by the unit and CLI tests of registry."""

FIRST_USER_ROW = {
    "id": "learned_filter_v1",
    "kind": "filter",
    "onnx": "learned_filter_v1.onnx",
    "opset": 17,
    "quant_mode": "fp32",
    "quant_accuracy_budget_plcc": 0.01,
    "license": "BSD-2-Clause-Patent",
    "license_url": "https://example.org/NOTICE",
    "sigstore_bundle": "learned_filter_v1.onnx.sigstore.json",
    "description": "Tiny residual filter",
    "notes": "self-supervised",
    "smoke": False,
}


def _model_file(d, name="m.onnx", data=b"not read by validate"):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
    return d / name
