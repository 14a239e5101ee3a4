"""What every producer shares: pre-flight, quantise in a scratch folder, prove the result
loads and runs, write it atomically, and describe it in a report with `run_provenance`."""

from __future__ import annotations

import contextlib
import io
import logging
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .. import coverage, provenance
from ..errors import UserError, one_line, param
from ..int8_ops import quantized_op_types
from ..onnxio import file_bytes, graph_inputs, session, sig_from_session
from ..paths import (
    all_or_nothing,
    atomic_write_bytes,
    check_writable,
    find_repo_root,
    refuse_clobber,
    sidecar_path,
    write_json,
)
from ..results import Coverage, Produced
from ..stamp import stamp_source
from .preflight import Preflight, preflight


@dataclass(kw_only=True)
class ProduceResult(Produced):
    """A post-training sidecar: where it came from, its size and which ops run in int8."""

    mode: str
    model: Path
    fp32_bytes: int
    int8_bytes: int
    quantized_ops: dict
    config: dict
    details: dict = field(default_factory=dict)
    coverage: Coverage | None = None  # what the sidecar stores in int8

    @property
    def size_ratio(self) -> float:
        return self.int8_bytes / self.fp32_bytes if self.fp32_bytes else float("nan")


def run_once(int8_bytes: bytes, label: str, feed: dict[str, np.ndarray] | None) -> None:
    """Load the produced file in ONNX Runtime and run it on one sample: a file that does not load
    or run is an error, never a success."""
    sess = session(int8_bytes, label=label)
    if feed is None:
        from ..inputs import draw, plan_inputs

        ins, _ = sig_from_session(sess)
        feed = draw(plan_inputs(ins), 1, 0)[0]
    try:
        sess.run(None, feed)
    except Exception as e:
        raise UserError(f"the quantised model loads but does not run: {one_line(e, 300)}", subject=label) from None


def produce(
    *,
    mode: str,
    model_path: Path,
    output: Path | None,
    quantise: Callable[[Path, Path, Preflight], dict],
    sample_feed: Callable[[Preflight], dict | None],
    config: dict,
    report_out: Path | None,
    extra_inputs: dict | None = None,
    argv: list[str] | None = None,
    exclude: tuple[str, ...] = (),
) -> ProduceResult:
    """Quantise `model_path` with `quantise(src, dst, prepared)` in a scratch folder, check the
    result, and write it atomically with its stamp and report. `exclude`: nodes kept in float
    (checked to exist here; the quantiser is told by `quantise`)."""
    model_path = Path(model_path)
    output = Path(output) if output is not None else sidecar_path(model_path)
    _check_output(model_path, output, report_out)
    started = time.perf_counter()
    prepared = preflight(model_path)
    if exclude:
        name_nodes(prepared.model, exclude, model_path)
    q, details = _quantise_in_scratch(prepared, quantise, model_path)
    ops, cov = _what_was_quantised(q, prepared, mode, exclude, model_path)
    stamp_source(q, mode, model_path, prepared.external_files, exclude)
    data = q.SerializeToString()
    run_once(data, f"{output} (produced from {model_path})", sample_feed(prepared))
    with all_or_nothing(output, report_out):  # a report that cannot be written takes the sidecar back
        atomic_write_bytes(output, data)
        result = ProduceResult(
            mode=mode,
            model=model_path,
            output=output,
            fp32_bytes=file_bytes(model_path, prepared.external_files),
            int8_bytes=len(data),
            quantized_ops=ops,
            config=config,
            details=details,
            coverage=cov,
        )
        inputs = {"model": model_path, **(extra_inputs or {})}
        result.report = _report(result, cov, prepared, started, inputs, argv)
        if report_out is not None:
            write_json(report_out, result)
        return result


def _check_output(model_path: Path, output: Path, report_out: Path | None) -> None:
    """Before the work, not after it: the sidecar is an .onnx file other than the model, and it
    and the report can be written, the report replacing neither."""
    if output.resolve() == model_path.resolve():
        raise UserError(
            "would overwrite the input model", subject=f"{param('output')} {output}", fix="pick another path"
        )
    if output.suffix != ".onnx":
        raise UserError("must end in .onnx", subject=f"{param('output')} {output}", fix="name it <something>.onnx")
    refuse_clobber(report_out, param("report_out"), {"model": model_path, "int8 output": output})
    check_writable(output, f"{param('output')} {output}")
    check_writable(report_out, f"{param('report_out')} {report_out}")


def _quantise_in_scratch(
    prepared: Preflight, quantise: Callable[[Path, Path, Preflight], dict], model_path: Path
) -> tuple[onnx.ModelProto, dict]:
    """`quantise` run on a copy of the pre-flighted model in a scratch folder, with the
    quantiser's own logging kept quiet: the model it wrote, and what it says it did."""
    with tempfile.TemporaryDirectory(prefix="quantgate-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "model.onnx"
        dst = tmp / "model.int8.onnx"
        onnx.save(prepared.model, str(src))
        with _quiet_root_logger():
            details = quantise(src, dst, prepared)
        if not dst.is_file():
            raise UserError("the quantiser wrote no output", subject=str(model_path))
        data = dst.read_bytes()
    return onnx.load_from_string(data), details


def _what_was_quantised(
    q: onnx.ModelProto, prepared: Preflight, mode: str, exclude: tuple[str, ...], model_path: Path
) -> tuple[dict, Coverage]:
    """The int8 op types of `q` and its coverage; refused when no operator was quantised (the
    gate refuses such a file: say it here, before anything is written) or a node asked to stay in
    float was quantised."""
    ops = quantized_op_types(q)
    if not ops:
        raise UserError(
            f"{mode} quantisation changed no operator (ops in the model: "
            f"{', '.join(sorted({n.op_type for n in prepared.model.graph.node}))}), so there is no int8 model to ship",
            subject=str(model_path),
            fix="keep quant_mode fp32, or name other operator types (ops inside If/Loop branches are not quantised)",
        )
    cov = coverage.measure(prepared.model, q)
    weighted = {w.key: w for w in coverage.weight_nodes(prepared.model)}
    lost = [k for k in exclude if k in weighted and k not in cov.float_nodes]
    if lost:
        raise _quantised_anyway(lost, weighted, exclude, model_path)
    return ops, cov


def _report(
    r: ProduceResult, cov: Coverage, prepared: Preflight, started: float, inputs: dict, argv: list[str] | None
) -> dict:
    """The producer's report (`schema_version` 1): the files, sizes, coverage, settings,
    pre-flight, the quantiser's details, the time taken and the run's provenance."""
    return {
        "schema_version": 1,
        "kind": f"ptq-{r.mode}" if r.mode in ("dynamic", "static") else r.mode,
        "model": str(r.model),
        "output": str(r.output),
        "fp32_bytes": r.fp32_bytes,
        "int8_bytes": r.int8_bytes,
        "size_ratio": round(r.size_ratio, 6),
        "quantized_op_types": r.quantized_ops,
        "coverage": cov.to_json(),
        "config": r.config,
        "preflight": {
            "dropped_value_info": prepared.dropped_value_info,
            "opset": prepared.opset,
            "inlined_external_data": prepared.external_data,
        },
        **r.details,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "run_provenance": provenance.build(inputs=inputs, root=find_repo_root(r.model), argv=argv),
    }


def _quantised_anyway(lost: list[str], weighted: dict, exclude: tuple[str, ...], path: Path) -> UserError:
    """Why nodes asked to stay in float were quantised: a weight they share with a node that is
    quantised (tied weights), else a name the quantiser did not see (pre-processing can rename or
    fuse nodes)."""
    shown = ", ".join(repr(k) for k in lost[:3])
    for k in lost:
        sharing = [
            o for o, w in weighted.items() if o != k and o not in exclude and set(w.weights) & set(weighted[k].weights)
        ]
        if sharing:
            return UserError(
                f"{k!r} shares its weights with {', '.join(sharing[:3])}, which the quantiser quantises (a weight "
                "is stored once), so it cannot stay in float alone",
                subject=str(path),
                fix=f"keep {', '.join(sharing[:3])} in float too",
            )
    return UserError(
        f"the node(s) {shown} to keep in float were quantised anyway (the quantiser did not find the name)",
        subject=str(path),
        fix=f"quantise without {param('preprocess')} if it was on, or name the nodes as the quantiser sees them",
    )


def name_nodes(model: onnx.ModelProto, keep: tuple[str, ...], path: Path) -> None:
    """Give every unnamed node of `model` (a scratch copy) the name `coverage.node_key` gives it,
    so the quantiser can be told which nodes to keep in float; refuse names the model lacks."""
    taken = {n.name for n in model.graph.node if n.name}
    for n in model.graph.node:
        if not n.name:
            key = coverage.node_key(n)
            n.name = key if key not in taken else f"{key}#{len(taken)}"
            taken.add(n.name)
    unknown = [k for k in keep if k not in taken]
    if unknown:
        weighted = [w.key for w in coverage.weight_nodes(model)]
        shown = ", ".join(weighted[:8]) + (f", ... ({len(weighted)} in all)" if len(weighted) > 8 else "")
        raise UserError(
            f"has no node named {', '.join(repr(u) for u in unknown[:3])} to keep in float",
            subject=str(path),
            fix=f"name nodes of the model (its weight nodes: {shown or 'none'}); "
            f"quantgate explain {shlex.quote(str(path))} ranks them",
        )


@contextlib.contextmanager
def _quiet_root_logger():
    """The onnxruntime quantiser logs advice and prints progress; keep the terminal to ours."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)  # its calibration sessions log in C++ otherwise
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the entropy calibrator print()s progress
            yield
    finally:
        root.setLevel(old)


def inputs_of(prepared: Preflight, path: Path):
    return graph_inputs(prepared.model, path)


def preprocess(src: Path, model: Path) -> tuple[Path, dict]:
    """ONNX Runtime's pre-processing for quantisation (`quant_pre_process`: symbolic shape
    inference, its basic graph optimisations such as constant folding and Conv+BatchNorm fusion,
    ONNX shape inference) on the scratch copy `src`. Symbolic shape inference merges conflicting
    symbolic dims (`auto_merge`); where it still cannot finish (common for exported transformers)
    the rest runs without it. Returns the pre-processed file beside `src` and what ran."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = src.with_name(src.stem + ".pre.onnx")
    steps = {"symbolic_shape_inference": True, "optimization": True, "onnx_shape_inference": True}
    try:
        # In the scratch folder: where symbolic shape inference gives up it dumps the whole model
        # (sym_shape_infer_temp.onnx and its external data) into the working directory.
        with contextlib.chdir(src.parent):
            try:
                quant_pre_process(str(src), str(out), auto_merge=True)
            except Exception as e:
                if "symbolic shape" not in str(e).lower():
                    raise
                steps["symbolic_shape_inference"] = False
                quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    except Exception as e:
        raise UserError(
            f"ONNX Runtime's pre-processing failed: {one_line(e, 300)}",
            subject=str(model),
            fix=f"quantise without {param('preprocess')}",
        ) from None
    if not out.is_file():
        raise UserError(
            "ONNX Runtime's pre-processing wrote no model",
            subject=str(model),
            fix=f"quantise without {param('preprocess')}",
        )
    return out, steps
