"""Benchmark: the sanity floor against gain and offset errors PLCC cannot see.

    python bench/floor_sweep.py [--samples 2048]

For every shipped model (model/tiny/registry.json) its sidecar as shipped, then the same sidecar
with its outputs turned into g * output (g = 1.05, 1.1, 0.9) or output + c (c = ±10 % of the
fp32 output's RMS, the error energy of a 10 % gain): each gated at a pinned sample count, with
the error against the output's spread (`rel_rmse`), its gain and offset part (`gain_offset`,
with its 95 % interval) and the verdict the default floor gives (with --on-marginal pass, so
that the floor alone decides). The floor must pass every shipped sidecar and fail every x1.1 gain and its
offset equivalent.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from quantgate.gate import GateSettings, gate_entry
from quantgate.gate.judge import SANITY_GAIN_OFFSET
from quantgate.registry import load_registry


def with_gain_offset(src: Path, dst: Path, gain: float, offset: float) -> None:
    """The sidecar `src` with every output o replaced by gain * o + offset."""
    m = onnx.load(str(src))
    for k, out in enumerate(m.graph.output):
        name = out.name
        m.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(gain, np.float32), f"_g{k}"),
                numpy_helper.from_array(np.array(offset, np.float32), f"_c{k}"),
            ]
        )
        for n in m.graph.node:
            n.output[:] = [o + "_raw" if o == name else o for o in n.output]
        m.graph.node.extend(
            [
                helper.make_node("Mul", [name + "_raw", f"_g{k}"], [name + "_gained"]),
                helper.make_node("Add", [name + "_gained", f"_c{k}"], [name]),
            ]
        )
    onnx.save(m, str(dst))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default="model/tiny/registry.json")
    ap.add_argument("--samples", type=int, default=2048)
    args = ap.parse_args()
    reg = load_registry(args.registry)
    settings = GateSettings(samples=args.samples, on_marginal="pass")  # the floor alone decides what it decides
    print(f"# floor: gain_offset <= {SANITY_GAIN_OFFSET:g}; {args.samples} samples per row, seed 0")
    print(
        f"{'model':<18} {'int8 output':<18} {'rel_rmse':>9} {'gain_offset':>11} {'95% interval':>18} "
        f"{'SQNR dB':>8}  verdict"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for e in reg.entries:
            if e.mode == "fp32" or e.int8_path is None:
                continue
            base = gate_entry(e, settings, reg.root, reg.path)
            o = base.outputs[0]
            rms = float(np.sqrt(o.rmse**2 / o.nmse)) if o.nmse else 1.0  # the fp32 output's RMS
            cases = [("as shipped", 1.0, 0.0)]
            cases += [(f"x{g:g}", g, 0.0) for g in (1.05, 1.1, 0.9)]
            cases += [(f"{s:+.0%} RMS offset", 1.0, s * rms) for s in (0.1, -0.1)]
            for label, g, c in cases:
                if (g, c) == (1.0, 0.0):
                    row = base
                else:
                    work = Path(tmp) / e.id
                    shutil.rmtree(work, ignore_errors=True)
                    work.mkdir()
                    fp32 = work / e.onnx_path.name
                    shutil.copy(e.onnx_path, fp32)
                    for extra in e.onnx_path.parent.glob(e.onnx_path.name + ".data"):
                        shutil.copy(extra, work / extra.name)
                    with_gain_offset(e.int8_path, work / (fp32.name[:-5] + ".int8.onnx"), g, c)
                    entry = type(e)(
                        **{
                            **e.__dict__,
                            "onnx_path": fp32,
                            "int8_path": work / (fp32.name[:-5] + ".int8.onnx"),
                            "sha256": None,
                            "int8_sha256": None,
                        }
                    )
                    row = gate_entry(entry, settings, reg.root, reg.path)
                out = row.outputs[0]
                ci = out.gain_offset_ci
                shown = f"[{ci.low:.4f}, {ci.high:.4f}]" if ci else "—"
                floor = row.reason and "sanity floor" in row.reason
                verdict = row.status + (" (floor)" if floor else "") + (" marginal" if row.marginal else "")
                sq = "inf" if out.sqnr_db is None else f"{out.sqnr_db:.1f}"
                print(
                    f"{e.id:<18} {label:<18} {out.rel_rmse:9.4f} {out.gain_offset:11.4f} {shown:>18} {sq:>8}  {verdict}"
                )


if __name__ == "__main__":
    main()
