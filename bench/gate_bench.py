"""Benchmark: the gate's overhead against plain onnxruntime calls, and int8 vs fp32 speed/size.

    python bench/gate_bench.py [--registry model/tiny/registry.json] [--repeat 5] [--runs 200]

For every non-fp32 model of the registry it prints
- `gate s`: wall time of quantgate measuring that model (sessions, draws, 16 samples, metrics);
- `plain s`: the same work as bare onnxruntime calls (two sessions, 16 runs each, one corrcoef);
- `overhead`: gate / plain (the price of the checks and figures quantgate adds);
- `fp32 µs`, `int8 µs`: median latency of one inference on one sample (single thread);
- `speed`: fp32 / int8 latency (>1: int8 faster); `size`: int8 bytes / fp32 bytes.
Times are the best of `--repeat` rounds; run it twice and compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

from quantgate.gate import GateSettings, gate_entry
from quantgate.inputs import draw, plan_inputs
from quantgate.onnxio import load_model, sig_from_session
from quantgate.registry import load_registry


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def plain(e) -> float:
    t = time.perf_counter()
    a, b = _session(e.onnx_path), _session(e.int8_path)
    ins, _ = sig_from_session(a)
    feeds = _feeds(e, ins, 16)
    ya = [a.run(None, f)[0].ravel() for f in feeds]
    yb = [b.run(None, f)[0].ravel() for f in feeds]
    np.corrcoef(np.concatenate(ya), np.concatenate(yb))
    return time.perf_counter() - t


def _feeds(e, ins, n):
    """What the gate feeds this entry: its eval set when it has one, else the draws."""
    if e.eval_path is not None:
        from quantgate.produce import calibration as cal

        return list(cal.feeds(cal.read_npz(e.eval_path), ins))
    return draw(plan_inputs(ins, e.input_spec, model=load_model(e.onnx_path, external=False)), n, 0)


def latency(path, feed, runs) -> float:
    s = _session(path)
    for _ in range(10):
        s.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default="model/tiny/registry.json")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    reg = load_registry(args.registry)
    print(
        f"{'model':<20} {'mode':<8} {'gate s':>8} {'plain s':>8} {'overhead':>8} "
        f"{'fp32 µs':>9} {'int8 µs':>9} {'speed':>6} {'size':>6}"
    )
    for e in reg.entries:
        if e.mode == "fp32" or not e.int8_path.is_file():
            continue
        gate_s = min(_timed(lambda: gate_entry(e, GateSettings(), reg.root, reg.path)) for _ in range(args.repeat))
        plain_s = min(plain(e) for _ in range(args.repeat))
        ins, _ = sig_from_session(_session(e.onnx_path))
        feed = _feeds(e, ins, 1)[0]
        f_us, q_us = latency(e.onnx_path, feed, args.runs), latency(e.int8_path, feed, args.runs)
        size = e.int8_path.stat().st_size / e.onnx_path.stat().st_size
        print(
            f"{e.id:<20} {e.mode:<8} {gate_s:8.4f} {plain_s:8.4f} {gate_s / plain_s:8.2f} "
            f"{f_us:9.1f} {q_us:9.1f} {f_us / q_us:6.2f} {size:6.2f}"
        )


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
