"""Loading ONNX files and starting ONNX Runtime sessions, with one-line errors for bad files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from .errors import UserError, one_line
from .limits import file_kind, not_regular
from .paths import sha256_file

# ONNX tensor element type -> numpy dtype, for the types a gate can draw.
_ONNX_TO_NP: dict[int, type[np.generic]] = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.UINT16: np.uint16,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.UINT64: np.uint64,
    onnx.TensorProto.BOOL: np.bool_,
}


@dataclass(frozen=True)
class TensorSig:
    """A graph input or output: name, numpy dtype, and dims (int = fixed, str/None = symbolic)."""

    name: str
    dtype: np.dtype
    dims: tuple

    @property
    def fixed(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.dims)


def _sig(value_info: onnx.ValueInfoProto, path: Path) -> TensorSig:
    t = value_info.type
    if not t.HasField("tensor_type"):
        raise UserError(
            "is not a tensor (sequences and maps are not supported)",
            subject=str(path),
            field=f"input/output '{value_info.name}'",
            fix="export the model with tensor inputs and outputs",
        )
    elem = t.tensor_type.elem_type
    if elem not in _ONNX_TO_NP:
        raise UserError(
            f"has element type {onnx.TensorProto.DataType.Name(elem)}, which quantgate cannot draw",
            subject=str(path),
            field=f"'{value_info.name}'",
        )
    dims: list[int | str | None] = []
    if t.tensor_type.HasField("shape"):
        for d in t.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and d.dim_param:
                dims.append(d.dim_param)
            else:
                dims.append(None)
    return TensorSig(value_info.name, np.dtype(_ONNX_TO_NP[elem]), tuple(dims))


def graph_inputs(model: onnx.ModelProto, path: Path) -> list[TensorSig]:
    """Real inputs: graph inputs that are not initialisers (old exporters list weights too)."""
    inits = {i.name for i in model.graph.initializer}
    return [_sig(v, path) for v in model.graph.input if v.name not in inits]


def load_model(path: str | Path, *, what: str = "model", external: bool = True) -> onnx.ModelProto:
    """Read an ONNX file (external data inlined) or raise a one-line `UserError`."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "missing":
        raise UserError(f"{what} file not found", subject=str(path), fix="fix the path")
    if kind == "folder":
        raise UserError(
            f"is a folder, expected an .onnx {what} file", subject=str(path), fix=f"pass the {what} file itself"
        )
    if kind != "file":  # a named pipe would block onnx.load for ever
        raise not_regular(path, kind, what)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises several types for garbage bytes
        raise UserError(
            f"not a readable ONNX {what} ({type(e).__name__})", subject=str(path), fix="re-export or re-download it"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise UserError(f"the {what} has an empty graph", subject=str(path), fix="re-export it")
    if external:
        inline_external_data(model, path)
    return model


def inline_external_data(model: onnx.ModelProto, path: Path) -> bool:
    """Read the weights a model keeps in external files into the model; True if there were any."""
    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in _all_tensors(model)):
        return False
    missing = missing_external_data(model, path)
    if missing:
        raise UserError(
            f"weights live in external file '{missing[0]}', which does not exist beside the model",
            subject=str(path),
            fix="restore it or re-save the model with the data inlined",
        )
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except Exception as e:
        raise UserError(f"cannot read its external data ({e})", subject=str(path), fix="re-save the model") from None
    return True


def missing_external_data(model: onnx.ModelProto, path: Path) -> list[str]:
    out = []
    for t in _all_tensors(model):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((kv.value for kv in t.external_data if kv.key == "location"), None)
            if loc is None or not (path.parent / loc).is_file():
                out.append(loc or "?")
    return sorted(set(out))


def external_data_files(model: onnx.ModelProto, path: Path) -> list[Path]:
    """The external-data files a model names (for digests and provenance)."""
    locs = set()
    for t in _all_tensors(model):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for kv in t.external_data:
                if kv.key == "location":
                    locs.add(kv.value)
    return [path.parent / loc for loc in sorted(locs)]


def external_files_of(path: Path) -> list[Path]:
    """The external-data files the model file at `path` names that are regular files in its
    folder (the only ones a loader reads; a name that leads elsewhere, to a device say, is the
    loader's error to report), read without loading them; [] for a file that does not parse."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return []
    base = path.parent.resolve()
    kept = []
    for p in external_data_files(model, path):
        try:
            if p.is_file() and base in p.resolve().parents:
                kept.append(p)
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL in the name
            continue
    return kept


def missing_external_files(path: Path) -> list[str] | None:
    """The external-data files the model at `path` names that are not there (a weights blob left
    out of a commit, an LFS file not pulled); None for a file onnx cannot parse."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return None
    out = []
    for p in external_data_files(model, path):
        try:
            if not p.is_file():
                out.append(p.name)
        except (OSError, ValueError):
            out.append(p.name)
    return out


def file_bytes(path: Path, external: list[Path] | None = None) -> int:
    """What a model takes on disk: the .onnx file and the external-data files it names."""
    files = external_files_of(path) if external is None else external
    return path.stat().st_size + sum(p.stat().st_size for p in files)


def data_digest(files: list[Path]) -> str:
    """One digest of a model's external-data files (by name and content), for stale checks."""
    h = hashlib.sha256()
    for p in sorted(files, key=lambda p: p.name):
        h.update(f"{p.name}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _all_tensors(model: onnx.ModelProto):
    def graphs(g):
        yield g
        for n in g.node:
            for a in n.attribute:
                if a.g is not None and a.HasField("g"):
                    yield from graphs(a.g)
                for sg in a.graphs:
                    yield from graphs(sg)

    for g in graphs(model.graph):
        yield from g.initializer
        for n in g.node:
            for a in n.attribute:
                if a.HasField("t"):
                    yield a.t


def session(model: str | Path | bytes, *, label: str | Path = "model", threads: int = 1):
    """A CPU session, single-threaded unless asked (one thread: the same figures on every machine
    and run); `threads=0` is ONNX Runtime's default pool, for timing, with its idle threads not
    spinning (two sessions timed in turn would otherwise take each other's cores)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if threads != 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.inter_op_num_threads = 1
    so.log_severity_level = 4  # failures reach the user as our one line, not ORT log lines
    src = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise UserError(f"ONNX Runtime cannot load it: {one_line(e, 303)}", subject=str(label)) from None


def sig_from_session(sess) -> tuple[list[TensorSig], list[TensorSig]]:
    """Input and output signatures as ONNX Runtime reports them (external data already resolved)."""

    def conv(arg):
        dtype = _ORT_TYPES.get(arg.type)
        if dtype is None:
            raise UserError(f"has type {arg.type}, which quantgate cannot draw", field=f"'{arg.name}'")
        dims = tuple(
            d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) else None) for d in (arg.shape or [])
        )
        return TensorSig(arg.name, np.dtype(dtype), dims)

    return [conv(a) for a in sess.get_inputs()], [conv(a) for a in sess.get_outputs()]


_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}
