"""Benchmark: what int8 buys a sentence encoder and the shipped models, per producer setting.

    python bench/encoder_bench.py [--no-avx2] [--no-shipped] [--seq 128] [--gate-seq 32] [--seed 0]

Builds a small transformer sentence encoder with torch (seeded, deterministic; see
`build_encoder`), exports it to ONNX, and makes one int8 file per candidate setting: quantgate's
default, plain `onnxruntime.quantization.quantize_dynamic` / `quantize_static` defaults, and the
settings the defaults were chosen from (u8 or 7-bit or full-range s8 weights, per-channel or
per-tensor, with and without the embedding `Gather`, QOperator against QDQ for static, ONNX
Runtime's pre-processing). Dynamic activations are always u8 in ONNX Runtime; s8 activations
appear in the static candidates. For each file:

- `size`: fp32 bytes ÷ int8 bytes (higher is smaller);
- `speed@1` and `speed@dflt`: fp32 latency ÷ int8 latency (higher is faster) with 1 intra-op
  thread and with ONNX Runtime's default count, timed exactly as `quantgate gate --bench` times
  them (`quantgate.gate.latency.time_pair`: warm-up, back-to-back pairs in alternating order,
  the median ratio of blocks of pairs); the fp32 milliseconds are printed beside them;
- `drop` with its 95 % interval and sample count: `quantgate.gate.run_gate` on a scratch registry
  (the encoder at a fixed `--gate-samples` with token ids drawn in [0, vocab) through
  `quant_inputs`; the shipped models as their registry entries say, adaptive sampling);
- `drop@n`, `AVX2@n`, `same`: the same file measured on a few samples here and as an AVX2-only
  CPU computes it (`run_gate(avx2_check=True)`, int8 side under `qemu-x86_64 -cpu Haswell`,
  which is slow: hence few samples and short sentences), and whether the verdict is the same;
- `verdict`: over budget; `keep fp32 (slower)` when int8 is slower than fp32 at 1 thread by the
  gate's rule (its interval wholly above 1.05); `int8` when faster by the same rule; else
  `int8 (size only)`.

The shipped models (model/tiny/registry.json) get the same columns for quantgate's default
against plain ONNX Runtime defaults in their own mode. Nothing is asserted: the tables are for
docs/benchmarks.md. Timings depend on the machine and on what else runs on it (the load average
is printed); the drops are deterministic for a given seed, machine kind and versions. About five
minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from quantgate.gate.latency import Timing, time_pair

VOCAB = 30522
HIDDEN = 384
LAYERS = 6
HEADS = 6
FFN = 1536
MAX_POS = 512
BUDGET = 0.02


def build_encoder(path: Path, *, seed: int = 0, vocab: int = VOCAB, hidden: int = HIDDEN, layers: int = LAYERS) -> dict:
    """A BERT-shaped sentence encoder (post-LayerNorm, GELU FFN, mean pooling) exported to ONNX:
    `input_ids` int64 [1, seq] -> `embedding` float32 [1, hidden].

    Its weights are drawn, not trained (no data set or hub download is available here), with the
    shapes of statistics a trained encoder has where they matter to int8: token embeddings of
    std 0.05 whose rows differ in norm (log-normal scale, sigma 0.3, as frequent and rare tokens
    do), linear weights of std 1/sqrt(fan_in) whose output channels differ in range (log-normal
    scale, sigma 0.3: what per-channel scales are for), LayerNorm gains near 1. Figures compare
    settings with each other on one model; a trained encoder's absolute drop will differ.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    def channel_scaled(rows: int, cols: int, std: float) -> torch.Tensor:
        w = torch.randn(rows, cols, generator=gen) * std
        return w * torch.exp(0.3 * torch.randn(rows, 1, generator=gen))

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
            self.up, self.down = nn.Linear(hidden, FFN), nn.Linear(FFN, hidden)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, s, _ = x.shape
            dh = hidden // HEADS

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.reshape(b, s, HEADS, dh).transpose(1, 2)

            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(b, s, hidden)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.down(nn.functional.gelu(self.up(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(vocab, hidden)
            self.pos = nn.Parameter(torch.zeros(MAX_POS, hidden))
            self.ln = nn.LayerNorm(hidden)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            x = self.tok(input_ids) + self.pos[: input_ids.shape[1]]
            x = self.ln(x)
            for layer in self.layers:
                x = layer(x)
            return x.mean(dim=1)

    m = Encoder().eval()
    with torch.no_grad():
        m.tok.weight.copy_(channel_scaled(vocab, hidden, 0.05))
        m.pos.copy_(torch.randn(MAX_POS, hidden, generator=gen) * 0.02)
        for mod in m.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.copy_(channel_scaled(mod.out_features, mod.in_features, mod.in_features**-0.5))
                mod.bias.copy_(torch.randn(mod.out_features, generator=gen) * 0.02)
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(1 + 0.1 * torch.randn(hidden, generator=gen))
                mod.bias.copy_(0.05 * torch.randn(hidden, generator=gen))
    example = torch.zeros(1, 16, dtype=torch.int64)
    torch.onnx.export(
        m,
        (example,),
        str(path),
        input_names=["input_ids"],
        output_names=["embedding"],
        dynamic_axes={"input_ids": {1: "seq"}},
        opset_version=17,
        dynamo=False,
        do_constant_folding=True,
    )
    params = sum(p.numel() for p in m.parameters())
    return {"params": params, "vocab": vocab, "hidden": hidden, "layers": layers}


# --- candidates ------------------------------------------------------------------------------


@dataclass
class Candidate:
    model: str  # the row's model name
    label: str  # the setting
    mode: str  # how the gate treats the file: "dynamic" or "static"
    make: Callable[[Path, Path], object]  # (fp32 file, int8 file to write)
    avx2: bool = True  # measure it under emulation too


def _qg_dynamic(cfg=None):
    from quantgate.produce.dynamic import quantize_dynamic

    return lambda src, dst: quantize_dynamic(src, dst, config=cfg)


def _qg_static(cal: dict, cfg=None):
    from quantgate.produce.static import quantize_static

    return lambda src, dst: quantize_static(src, cal, dst, config=cfg)


def _plain_dynamic(**kw):
    def make(src: Path, dst: Path) -> None:
        from onnxruntime.quantization import quantize_dynamic

        with _quiet():
            quantize_dynamic(str(src), str(dst), **kw)

    return make


def _plain_static(cal: dict):
    def make(src: Path, dst: Path) -> None:
        import onnx
        from onnxruntime.quantization import quantize_static

        from quantgate.onnxio import graph_inputs
        from quantgate.sampleset import reader

        with _quiet():
            quantize_static(str(src), str(dst), reader(cal, graph_inputs(onnx.load(str(src)), src)))

    return make


class _quiet:
    """onnxruntime's quantiser logs advice on every call; keep the table readable."""

    def __enter__(self):
        import logging

        import onnxruntime

        onnxruntime.set_default_logger_severity(4)
        self.root = logging.getLogger()
        self.level = self.root.level
        self.root.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.root.setLevel(self.level)


def encoder_candidates(cal: dict) -> list[Candidate]:
    from quantgate.produce.config import PRESETS, QuantConfig

    mm = ("MatMul", "Gemm")
    c = "encoder"
    return [
        Candidate(c, "quantgate default (dynamic)", "dynamic", _qg_dynamic()),
        Candidate(c, "plain quantize_dynamic", "dynamic", _plain_dynamic()),
        Candidate(c, "plain quantize_dynamic per-channel", "dynamic", _plain_dynamic(per_channel=True)),
        Candidate(
            c,
            "dyn pc u8 w, no Gather (old default)",
            "dynamic",
            _qg_dynamic(QuantConfig(weight_type="quint8", op_types=mm)),
        ),
        Candidate(c, "dyn pc u8 w + Gather", "dynamic", _qg_dynamic(QuantConfig(weight_type="quint8"))),
        Candidate(c, "dyn pc s8 7-bit, no Gather", "dynamic", _qg_dynamic(QuantConfig(reduce_range=True, op_types=mm))),
        Candidate(c, "dyn pc s8 7-bit + Gather", "dynamic", _qg_dynamic(QuantConfig(reduce_range=True))),
        Candidate(
            c, "dyn pt s8 7-bit + Gather", "dynamic", _qg_dynamic(QuantConfig(per_channel=False, reduce_range=True))
        ),
        Candidate(c, "dyn pc s8 full + Gather (avx512_vnni)", "dynamic", _qg_dynamic(PRESETS["avx512_vnni"].dynamic)),
        Candidate(
            c,
            "dyn pc s8 7-bit + Gather, preprocess",
            "dynamic",
            _qg_dynamic(QuantConfig(reduce_range=True, preprocess=True)),
        ),
        Candidate(c, "plain quantize_static (QDQ s8 x s8)", "static", _plain_static(cal)),
        Candidate(c, "static QDQ pc u8 x u8 (static default)", "static", _qg_static(cal)),
        Candidate(c, "static QDQ pc u8 x s8 7-bit", "static", _qg_static(cal, QuantConfig(reduce_range=True))),
        Candidate(
            c,
            "static QOp pc u8 x s8 7-bit",
            "static",
            _qg_static(cal, QuantConfig(reduce_range=True, quant_format="qoperator")),
        ),
    ]


def shipped_candidates(reg) -> list[tuple[object, Candidate]]:
    from quantgate.npz import read_npz
    from quantgate.produce.config import QuantConfig

    out = []
    for e in reg.entries:
        if e.mode == "dynamic":
            out += [
                (e, Candidate(e.id, "quantgate default (dynamic)", "dynamic", _qg_dynamic())),
                (e, Candidate(e.id, "plain quantize_dynamic", "dynamic", _plain_dynamic())),
                (e, Candidate(e.id, "plain quantize_dynamic per-channel", "dynamic", _plain_dynamic(per_channel=True))),
                (
                    e,
                    Candidate(
                        e.id, "dyn pc u8 w (old default)", "dynamic", _qg_dynamic(QuantConfig(weight_type="quint8"))
                    ),
                ),
            ]
        elif e.mode in ("static", "qat") and e.calibration_path is not None:
            cal = read_npz(e.calibration_path)
            out += [
                (e, Candidate(e.id, "quantgate default (static)", "static", _qg_static(cal))),
                (e, Candidate(e.id, "plain quantize_static (QDQ s8 x s8)", "static", _plain_static(cal))),
                (
                    e,
                    Candidate(
                        e.id, "static QDQ pc u8 x s8 7-bit", "static", _qg_static(cal, QuantConfig(reduce_range=True))
                    ),
                ),
            ]
    return out


# --- latency ---------------------------------------------------------------------------------


def latency(fp32: Path, int8: Path, feed: dict, threads: int) -> Timing:
    """fp32 against int8 as `quantgate gate --bench` times them."""
    from quantgate.onnxio import session

    s_fp, s_q = session(fp32, threads=threads), session(int8, threads=threads)
    return time_pair(
        partial(s_fp.run, None, feed),
        partial(s_q.run, None, feed),
        threads="1" if threads == 1 else "default",
        batch=1,
    )


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Row:
    cand: Candidate
    fp32: Path
    int8: Path | None
    feed: dict
    reg_row: dict = field(default_factory=dict)
    error: str | None = None
    size: float | None = None
    speed: dict = field(default_factory=dict)  # threads (1, 0 = default) -> Timing
    gate: object = None
    avx2_gate: object = None


def _registry_row(rid: str, onnx_path: str, mode: str, budget: float, extra: dict) -> dict:
    row = {"id": rid, "onnx": onnx_path, "quant_mode": mode, "quant_accuracy_budget_plcc": budget, **extra}
    if mode == "static":
        row.setdefault("quant_calibration_set", "unused.npz")
    return row


def produce_all(rows_in: list[tuple[Candidate, Path, dict, dict, float]], work: Path) -> list[Row]:
    """Make every candidate's int8 file beside a copy of its fp32 model, one folder each."""
    rows = []
    for i, (cand, fp32, feed, extra, budget) in enumerate(rows_in):
        d = work / f"c{i:02d}"
        d.mkdir()
        src = d / "m.onnx"
        shutil.copy(fp32, src)
        dst = d / "m.int8.onnx"
        row = Row(cand, src, dst, feed)
        try:
            cand.make(src, dst)
            row.size = fp32.stat().st_size / dst.stat().st_size
        except Exception as err:  # a setting ONNX Runtime cannot apply: say so, go on
            row.error, row.int8 = " ".join(str(err).split())[:90], None
        row.reg_row = _registry_row(f"c{i:02d}", f"c{i:02d}/m.onnx", cand.mode, budget, extra)
        rows.append(row)
    return rows


def gate_all(rows: list[Row], work: Path, seed: int, avx2: bool, avx2_samples: int, avx2_inputs: dict) -> None:
    from quantgate.gate import run_gate

    ok = [r for r in rows if r.int8 is not None]
    (work / "registry.json").write_text(json.dumps({"models": [r.reg_row for r in ok]}))
    results = run_gate(work / "registry.json", root=work, seed=seed)
    for r, g in zip(ok, results.models, strict=True):
        r.gate = g
    if not avx2:
        return
    emu = [r for r in ok if r.cand.avx2]
    models = []
    for r in emu:
        row = {k: v for k, v in r.reg_row.items() if k != "quant_gate_samples"}
        if "quant_eval_set" not in row:
            row["quant_gate_samples"] = avx2_samples
        row.update(avx2_inputs.get(r.cand.model, {}))
        models.append(row)
    (work / "registry.avx2.json").write_text(json.dumps({"models": models}))
    results = run_gate(work / "registry.avx2.json", root=work, seed=seed, avx2_check=True)
    for r, g in zip(emu, results.models, strict=True):
        r.avx2_gate = g


def time_all(rows: list[Row], thread_counts: tuple[int, ...]) -> None:
    for r in rows:
        if r.int8 is None:
            continue
        for t in thread_counts:
            r.speed[t] = latency(r.fp32, r.int8, r.feed, t)


def _drop(g) -> str:
    if g is None:
        return f"{'-':>30}"
    if g.drop is None:
        return f"{g.status + ': ' + (g.reason or '')[:22]:>30}"
    ci = g.drop_ci.to_json() if g.drop_ci else None
    shown = f"[{ci[0]:.5f}, {ci[1]:.5f}]" if ci else "[-]"
    return f"{g.drop:>8.5f} {shown:<18} {g.samples:>4}"


def _avx2(r: Row) -> str:
    g = r.avx2_gate
    if g is None:
        return f"{'-':>26}"
    a = g.avx2.to_json() if g.avx2 else {}
    if a.get("drop") is None:
        return f"{'n/a: ' + str(a.get('status', '?')):>26}"
    same = "yes" if a.get("status") == g.status else "NO"
    return f"{g.drop:>8.5f} {a['drop']:>8.5f} {g.samples:>3} {same:>4}"


def _verdict(r: Row) -> str:
    g = r.gate
    if g is None or g.status not in ("pass", "fail"):
        return "-"
    if g.status == "fail":
        return "over budget"
    return {"slower": "keep fp32 (slower)", "faster": "int8"}.get(r.speed[1].verdict, "int8 (size only)")


def print_table(title: str, rows: list[Row], thread_counts: tuple[int, ...]) -> None:
    print(f"\n## {title}")
    speeds = "".join(f" {'speed@' + ('dflt' if t == 0 else str(t)):>10}" for t in thread_counts)
    fp = "".join(f" {'fp32 ms@' + ('dflt' if t == 0 else str(t)):>12}" for t in thread_counts)
    print(
        f"{'model':<17} {'setting':<40} {'size':>5}{speeds}{fp} "
        f"{'drop':>8} {'95% interval':<18} {'n':>4}  {'drop@n':>8} {'AVX2@n':>8} {'n':>3} same  verdict"
    )
    for r in rows:
        head = f"{r.cand.model:<17} {r.cand.label:<40}"
        if r.error:
            print(f"{head} not produced: {r.error}")
            continue
        sp = "".join(f" {1 / r.speed[t].ratio:>10.2f}" for t in thread_counts)
        fp_ms = "".join(f" {r.speed[t].fp32_ms:>12.3f}" for t in thread_counts)
        print(f"{head} {r.size:>5.2f}{sp}{fp_ms} {_drop(r.gate)}  {_avx2(r)}  {_verdict(r)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default="model/tiny/registry.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seq", type=int, default=128, help="Tokens per sentence when timing the encoder.")
    ap.add_argument("--gate-seq", type=int, default=32, help="Tokens per sentence the gate draws.")
    ap.add_argument("--gate-samples", type=int, default=256, help="Gate samples per encoder candidate (fixed).")
    ap.add_argument("--cal-samples", type=int, default=32, help="Calibration sentences for static PTQ.")
    ap.add_argument("--no-avx2", action="store_true", help="Skip the emulated AVX2 measurement.")
    ap.add_argument("--avx2-samples", type=int, default=8, help="Samples per model under emulation.")
    ap.add_argument("--avx2-seq", type=int, default=8, help="Tokens per sentence under emulation.")
    ap.add_argument("--no-shipped", action="store_true", help="Only the encoder.")
    args = ap.parse_args()

    import onnx

    from quantgate.cpu import cpu_info, int8_kernels
    from quantgate.inputs import draw, plan_inputs
    from quantgate.onnxio import graph_inputs
    from quantgate.registry import load_registry

    started = time.perf_counter()
    cpu, k = cpu_info(), int8_kernels()
    import onnxruntime

    print(f"# CPU: {cpu['model']} ({', '.join(cpu['int8_features'])}); {cpu['logical_cores']} logical cores")
    print(f"# int8 kernels here: {k['family']} (u8×s8 {k['u8s8']}); onnxruntime {onnxruntime.__version__}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    threads = (1, 0)
    with tempfile.TemporaryDirectory(prefix="encoder-bench-") as tmp:
        work = Path(tmp)
        (work / ".git").mkdir()
        enc = work / "encoder.onnx"
        info = build_encoder(enc, seed=args.seed)
        print(
            f"# encoder: {info['params'] / 1e6:.1f}M parameters ({info['vocab']} x {info['hidden']} embedding, "
            f"{info['layers']} layers), fp32 {enc.stat().st_size / 1e6:.1f} MB; timed at {args.seq} tokens, "
            f"gated at {args.gate_seq} ({args.gate_samples} samples, budget {BUDGET}); speed = fp32 ms / int8 ms "
            f"at 1 thread and ONNX Runtime's default count (dflt), timed as quantgate gate --bench times them"
        )
        if not args.no_avx2:
            print(
                f"# drop@n / AVX2@n: the same file on {args.avx2_samples} samples ({args.avx2_seq} tokens for the "
                "encoder) here and under qemu-x86_64 -cpu Haswell; same: the verdict is the same on both"
            )
        rng = np.random.default_rng(args.seed)
        cal = {"input_ids": rng.integers(0, VOCAB, (args.cal_samples, args.gate_seq), dtype=np.int64)}
        enc_feed = {"input_ids": rng.integers(0, VOCAB, (1, args.seq), dtype=np.int64)}
        spec = {
            "quant_inputs": {"input_ids": {"shape": [1, args.gate_seq], "low": 0, "high": VOCAB}},
            "quant_gate_samples": args.gate_samples,
        }
        rows_in: list = [(c, enc, enc_feed, spec, BUDGET) for c in encoder_candidates(cal)]
        avx2_inputs = {
            "encoder": {"quant_inputs": {"input_ids": {"shape": [1, args.avx2_seq], "low": 0, "high": VOCAB}}}
        }
        if not args.no_shipped:
            reg = load_registry(args.registry)
            for e, c in shipped_candidates(reg):
                m = onnx.load(str(e.onnx_path))
                feed = draw(plan_inputs(graph_inputs(m, e.onnx_path), e.input_spec, model=m), 1, args.seed)[0]
                extra = {k: v for k, v in e.raw.items() if k.startswith("quant_") and k not in ("quant_mode",)}
                extra.pop("quant_calibration_set", None)
                if "quant_eval_set" in extra:
                    shutil.copy(e.eval_path, work / f"{e.id}.eval.npz")
                    extra["quant_eval_set"] = f"{e.id}.eval.npz"
                rows_in.append((c, e.onnx_path, feed, extra, e.budget))
        rows = produce_all(rows_in, work)
        print(f"# produced {len(rows)} files in {time.perf_counter() - started:.0f} s")
        gate_all(rows, work, args.seed, not args.no_avx2, args.avx2_samples, avx2_inputs)
        print(f"# gated in {time.perf_counter() - started:.0f} s")
        time_all(rows, threads)
    print_table("encoder", [r for r in rows if r.cand.model == "encoder"], threads)
    if not args.no_shipped:
        print_table("shipped models", [r for r in rows if r.cand.model != "encoder"], threads)
    print(f"\n# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"# total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
