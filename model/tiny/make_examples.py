"""Train and export the shipped example models, their calibration sets and registry.json.

    python model/tiny/make_examples.py            # everything, CPU, well under 2 minutes
    python model/tiny/make_examples.py --check    # rebuild into a temp dir, compare sha256

Deterministic: fixed seeds, one torch thread, deterministic algorithms, doc strings stripped
from the exported graphs. Rerunning with the same torch/numpy/onnx versions on the same kind
of CPU reproduces byte-identical .onnx and .npz files.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # so `examples` imports when run from the repository root

import examples as ex  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

OPSET = 17
EVAL_N = 32
CALIBRATION_N = 48
BUDGET = 0.01


@dataclass
class Spec:
    """One example model: how to build it, train it, export it and describe it in the registry."""

    id: str
    make: Callable[[], torch.nn.Module]
    # batch(n, generator) -> (*inputs, target)
    batch: Callable[[int, torch.Generator], tuple]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict
    export_shapes: list[tuple]  # shapes of the dummy inputs used for tracing
    steps: int
    batch_size: int
    lr: float
    kind: str
    quant_mode: str
    description: str
    notes: str
    extra: dict = field(default_factory=dict)


SPECS = [
    Spec(
        id="conv_filter_v1",
        make=ex.ConvFilter,
        batch=ex.denoise_batch,
        input_names=["frame"],
        output_names=["filtered"],
        dynamic_axes={"frame": {2: "height", 3: "width"}, "filtered": {2: "height", 3: "width"}},
        export_shapes=[(1, 1, 32, 32)],
        steps=300,
        batch_size=32,
        lr=3e-3,
        kind="filter",
        quant_mode="static",
        description="Residual 3-layer conv denoiser, frame [1,1,H,W] -> filtered [1,1,H,W].",
        notes="Trained on smooth synthetic images plus Gaussian noise (sigma 0.02-0.12). "
        "H and W are symbolic; quant_inputs pins them to 32 for the gate.",
        extra={"quant_inputs": {"frame": {"dims": {"height": 32, "width": 32}}}},
    ),
    Spec(
        id="nr_metric_v1",
        make=ex.NrMetric,
        batch=ex.noise_level_batch,
        input_names=["frame"],
        output_names=["score"],
        dynamic_axes={"frame": {0: "batch"}, "score": {0: "batch"}},
        export_shapes=[(1, 1, 32, 32)],
        steps=400,
        batch_size=32,
        lr=3e-3,
        kind="metric_nr",
        quant_mode="static",
        description="No-reference conv metric, frame [batch,1,32,32] -> score [batch,1].",
        notes=(
            "Predicts the high-frequency score of a synthetic image (RMS of the image minus its "
            "3x3 blur, / 0.3: about 0 flat, about 0.9 white noise)."
        ),
    ),
    Spec(
        id="mlp_regressor_v1",
        make=ex.MlpRegressor,
        batch=ex.mlp_batch,
        input_names=["features"],
        output_names=["score"],
        dynamic_axes={"features": {0: "batch"}, "score": {0: "batch"}},
        export_shapes=[(1, 6)],
        steps=2000,
        batch_size=128,
        lr=3e-3,
        kind="regressor",
        quant_mode="dynamic",
        description="MLP 6 -> 32 -> 32 -> 1, features [batch,6] -> score [batch,1].",
        notes="Target is a smooth nonlinear function of six uniform [0,1) features (see examples.mlp_target).",
    ),
    Spec(
        id="two_input_v1",
        make=ex.TwoInput,
        batch=ex.full_reference_batch,
        input_names=["ref", "dist"],
        output_names=["score"],
        dynamic_axes={"ref": {0: "batch"}, "dist": {0: "batch"}, "score": {0: "batch"}},
        export_shapes=[(1, 1, 16, 16), (1, 1, 16, 16)],
        steps=400,
        batch_size=64,
        lr=3e-3,
        kind="metric_fr",
        quant_mode="static",
        description="Full-reference conv metric, ref and dist [batch,1,16,16] -> score [batch,1].",
        notes="Predicts normalised MSE between ref and a noisy, blurred or unrelated dist; two inputs on purpose. "
        "Two independent uniform draws score almost the same every time, so the gate measures it on "
        "an eval set from the training distribution (quant_eval_set).",
        extra={"quant_eval_set": "model/tiny/eval/two_input_v1.npz"},
    ),
]


def make_deterministic() -> None:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    # may be set only once per process; a second build() in the same process is fine
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def seed_all(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train(spec: Spec, seed: int) -> tuple[torch.nn.Module, float]:
    g = seed_all(seed)
    model = spec.make()
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, spec.steps)
    model.train()
    for _ in range(spec.steps):
        *inputs, target = spec.batch(spec.batch_size, g)
        loss = torch.nn.functional.mse_loss(model(*inputs), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    # held-out loss on a fresh, separately seeded batch
    with torch.no_grad():
        *inputs, target = spec.batch(256, torch.Generator().manual_seed(seed + 1000))
        val = torch.nn.functional.mse_loss(model(*inputs), target).item()
    return model, val


def export_bytes(spec: Spec, model: torch.nn.Module) -> bytes:
    dummies = tuple(torch.zeros(s) for s in spec.export_shapes)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the legacy-exporter deprecation notice; dynamo=False is a deliberate choice here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            dummies,
            buf,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.dynamic_axes,
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    m = onnx.load_from_string(buf.getvalue())
    # doc strings can carry source paths/stack traces, which differ between checkouts
    m.doc_string = ""
    m.graph.doc_string = ""
    for node in m.graph.node:
        node.doc_string = ""
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


def calibration_arrays(spec: Spec, seed: int, n: int = CALIBRATION_N, offset: int = 2000) -> dict[str, np.ndarray]:
    """N samples from the training distribution, one array per ONNX input name."""
    *inputs, _ = spec.batch(n, torch.Generator().manual_seed(seed + offset))
    return {name: t.numpy().astype(np.float32) for name, t in zip(spec.input_names, inputs, strict=False)}


def check_in_ort(spec: Spec, model: torch.nn.Module, data: bytes, calib: dict) -> float:
    """Max abs difference torch vs ONNX Runtime on the calibration set (export sanity check)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    if spec.id == "conv_filter_v1":  # batch is fixed at 1 in this graph
        feeds = [{"frame": calib["frame"][i : i + 1]} for i in range(4)]
    else:
        feeds = [calib]
    worst = 0.0
    with torch.no_grad():
        for feed in feeds:
            want = model(*(torch.from_numpy(feed[n]) for n in spec.input_names)).numpy()
            got = sess.run(None, feed)[0]
            worst = max(worst, float(np.abs(want - got).max()))
    return worst


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def build(out_dir: Path, seed: int = 0, verbose: bool = True) -> dict:
    make_deterministic()
    (out_dir / "calibration").mkdir(parents=True, exist_ok=True)
    (out_dir / "eval").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, spec in enumerate(SPECS):
        t0 = time.perf_counter()
        model, val = train(spec, seed + 100 * i)
        data = export_bytes(spec, model)
        calib = calibration_arrays(spec, seed + 100 * i)
        err = check_in_ort(spec, model, data, calib)
        if err > 1e-4:
            raise SystemExit(f"{spec.id}: ONNX Runtime disagrees with torch by {err:.2e}")
        (out_dir / f"{spec.id}.onnx").write_bytes(data)
        np.savez(out_dir / "calibration" / f"{spec.id}.npz", **calib)
        # Held-out gate inputs from another seed: never the samples the ranges were calibrated on.
        np.savez(out_dir / "eval" / f"{spec.id}.npz", **calibration_arrays(spec, seed + 100 * i, EVAL_N, 3000))
        row = {
            "id": spec.id,
            "onnx": f"{spec.id}.onnx",
            "kind": spec.kind,
            "opset": OPSET,
            "license": "Apache-2.0",
            "description": spec.description,
            "quant_mode": spec.quant_mode,
        }
        if spec.quant_mode == "static":
            row["quant_calibration_set"] = f"model/tiny/calibration/{spec.id}.npz"
        row["quant_accuracy_budget_plcc"] = BUDGET
        row.update(spec.extra)
        row["sha256"] = sha256_bytes(data)
        row["notes"] = spec.notes
        rows.append(row)
        if verbose:
            n_params = sum(p.numel() for p in model.parameters())
            print(
                f"{spec.id:18s} params={n_params:6d} bytes={len(data):7d} val_mse={val:.5f} "
                f"ort_max_abs_err={err:.1e} {time.perf_counter() - t0:.1f}s"
            )
    return {"schema_version": 1, "models": rows}


def merge_registry(path: Path, fresh: dict) -> dict:
    """Keep fields someone added later (e.g. int8_sha256) when the fp32 file did not change."""
    if not path.is_file():
        return fresh
    old_rows = json.loads(path.read_text()).get("models", [])
    old = {r.get("id"): r for r in old_rows}
    for row in fresh["models"]:
        prev = old.get(row["id"])
        if prev and prev.get("sha256") == row["sha256"]:
            for k, v in prev.items():
                row.setdefault(k, v)
    # Rows this script does not make (e.g. the QAT example) stay, in their place after ours.
    ours = {spec.id for spec in SPECS}
    fresh["models"] += [r for r in old_rows if r.get("id") not in ours]
    return fresh


def tree_digests(d: Path) -> dict[str, str]:
    ours = {f"{spec.id}.onnx" for spec in SPECS} | {f"{spec.id}.npz" for spec in SPECS}
    return {
        str(p.relative_to(d)): sha256_bytes(p.read_bytes())
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name in ours
    }


# Training runs torch's float kernels, which round differently on different CPU kinds (AVX2,
# AVX-512, AMX): a rebuild elsewhere gives the same graph with weights a few 1e-7 apart.
WEIGHT_TOLERANCE = 1e-5


def weight_gap(a: Path, b: Path) -> float | None:
    """Largest weight difference of two ONNX files with the same graph; None when the graphs differ."""
    from onnx import numpy_helper

    ma, mb = onnx.load(str(a)), onnx.load(str(b))
    if [(n.op_type, list(n.input), list(n.output)) for n in ma.graph.node] != [
        (n.op_type, list(n.input), list(n.output)) for n in mb.graph.node
    ]:
        return None
    wa = {t.name: numpy_helper.to_array(t) for t in ma.graph.initializer}
    wb = {t.name: numpy_helper.to_array(t) for t in mb.graph.initializer}
    if wa.keys() != wb.keys() or any(wa[k].shape != wb[k].shape for k in wa):
        return None
    return max((float(np.abs(wa[k].astype(np.float64) - wb[k]).max()) for k in wa if wa[k].size), default=0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: model/tiny)")
    ap.add_argument(
        "--check", action="store_true", help="rebuild into a temporary folder and compare digests with --out"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            build(Path(tmp), verbose=False)
            want, got = tree_digests(args.out), tree_digests(Path(tmp))
            bad = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
            close = {k: weight_gap(args.out / k, Path(tmp) / k) for k in bad if k.endswith(".onnx")}
        for k in bad:
            gap = close.get(k)
            if gap is not None and gap <= WEIGHT_TOLERANCE:
                print(f"same graph, weights within {gap:.1e}: {k} (torch's float kernels differ between CPU kinds)")
            elif gap is not None:
                print(f"same graph, weights up to {gap:.1e} apart: {k} (trained on another CPU kind: expected there)")
            else:
                print(f"differs: {k}")
        failed = [k for k in bad if not (close.get(k) is not None and close[k] <= WEIGHT_TOLERANCE)]
        print(
            f"{len(got) - len(bad)}/{len(got)} files reproduce byte for byte, {len(bad) - len(failed)} to within "
            f"{WEIGHT_TOLERANCE:g} ({time.perf_counter() - t0:.1f}s)"
        )
        return 1 if failed else 0
    os.makedirs(args.out, exist_ok=True)
    reg_path = args.out / "registry.json"
    fresh = merge_registry(reg_path, build(args.out))
    reg_path.write_text(json.dumps(fresh, indent=2) + "\n")
    print(f"done in {time.perf_counter() - t0:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
