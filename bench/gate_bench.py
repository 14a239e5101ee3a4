"""Benchmark: the gate's overhead against plain onnxruntime calls, and int8 vs fp32 speed/size.

    python bench/gate_bench.py [--registry model/tiny/registry.json] [--repeat 7] [--runs 200]

For every non-fp32 model of the registry it prints
- `n`: the samples the gate measured the model on (its default adaptive sampling);
- `gate s`: wall time of quantgate measuring that model: checks (digests, stale sidecar, the
  int8 graph), sessions, the draws, n samples through both models, every output's figures and
  their bootstrap intervals at each sampling step;
- `plain s`: the least that measures the same thing with bare onnxruntime: two sessions, the
  same n samples through each, one `numpy.corrcoef`;
- `overhead`: gate / plain, median over `--repeat` rounds, with its min-max;
- `fp32 µs`, `int8 µs`: median latency of one inference on one sample (single thread);
- `speed`: fp32 / int8 latency (>1: int8 faster); `size`: int8 bytes / fp32 bytes.

The two arms alternate (gate, plain, gate, plain, ...) after one warm-up round of each, so
neither pays the cold start or gains from the other's caches; the gate's digest cache is
cleared before each of its rounds, so every round hashes the files as a first run does.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np
import onnxruntime as ort

from quantgate.cpu import cpu_info, int8_kernels
from quantgate.gate import GateSettings, gate_entry
from quantgate.inputs import plan_inputs, stream
from quantgate.onnxio import load_model, sig_from_session
from quantgate.paths import _sha256_cached
from quantgate.registry import load_registry


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def _feeds(e, ins, n):
    """What the gate feeds this entry: its eval set when it has one, else the first n draws."""
    if e.eval_path is not None:
        from quantgate import sampleset as cal

        return list(cal.feeds(cal.read_npz(e.eval_path), ins))
    plans = plan_inputs(ins, e.input_spec, model=load_model(e.onnx_path, external=False))
    return list(itertools.islice(stream(plans, 0), n))


def plain(e, n: int) -> float:
    t = time.perf_counter()
    a, b = _session(e.onnx_path), _session(e.int8_path)
    ins, _ = sig_from_session(a)
    feeds = _feeds(e, ins, n)
    ya = [a.run(None, f)[0].ravel() for f in feeds]
    yb = [b.run(None, f)[0].ravel() for f in feeds]
    np.corrcoef(np.concatenate(ya), np.concatenate(yb))
    return time.perf_counter() - t


def gate(e, reg) -> tuple[float, int]:
    _sha256_cached.cache_clear()  # every round hashes the files, as a run in CI does
    t = time.perf_counter()
    row = gate_entry(e, GateSettings(), reg.root, reg.path)
    return time.perf_counter() - t, row.samples or 0


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
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    reg = load_registry(args.registry)
    cpu = cpu_info()
    print(f"# CPU: {cpu['model']}; int8 kernels: {int8_kernels()['family']}; {args.repeat} rounds per arm")
    print(
        f"{'model':<18} {'mode':<8} {'n':>5} {'gate s':>8} {'plain s':>8} {'overhead':>8} {'min-max':>11} "
        f"{'fp32 µs':>9} {'int8 µs':>9} {'speed':>6} {'size':>6}"
    )
    for e in reg.entries:
        if e.mode == "fp32" or not e.int8_path.is_file():
            continue
        _, n = gate(e, reg)  # warm-up rounds, not counted
        plain(e, n)
        gate_s, plain_s = [], []
        for _ in range(args.repeat):
            gate_s.append(gate(e, reg)[0])
            plain_s.append(plain(e, n))
        ratios = [g / p for g, p in zip(gate_s, plain_s, strict=True)]
        ins, _ = sig_from_session(_session(e.onnx_path))
        feed = _feeds(e, ins, 1)[0]
        f_us, q_us = latency(e.onnx_path, feed, args.runs), latency(e.int8_path, feed, args.runs)
        size = e.int8_path.stat().st_size / e.onnx_path.stat().st_size
        print(
            f"{e.id:<18} {e.mode:<8} {n:>5} {statistics.median(gate_s):8.4f} {statistics.median(plain_s):8.4f} "
            f"{statistics.median(ratios):8.2f} {min(ratios):5.2f}-{max(ratios):<5.2f} "
            f"{f_us:9.1f} {q_us:9.1f} {f_us / q_us:6.2f} {size:6.2f}"
        )


if __name__ == "__main__":
    main()
