"""The QAT config file: YAML read with `yaml.safe_load`, validated completely before any training.

Every problem is one `UserError` line naming the file and the key. Nothing here imports torch,
so a broken config is reported the same way with or without the optional extra.

    model:
      factory: ../tiny/examples.py:MlpRegressor   # FILE.py:NAME or package.module:NAME
      kwargs: {hidden: 32}                        # optional
    data:                                         # one of path (npz/parquet) or generator
      path: train.npz
      inputs: [features]                          # keys/columns, one per forward() argument
      target: score
    loss: mse                                     # mse | l1 | smooth_l1 | huber
    lr: 0.003
    batch_size: 64
    seed: 0
    qat:
      epochs_fp32: 20
      epochs_qat: 10
      lr_qat: null                                # default lr / 10
      input_names: [features]
      input_shape: [1, 6]                         # or input_shapes: [[...], [...]]
      output_names: [score]
      dynamic_axes: {features: {0: batch}, score: {0: batch}}
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UserError

LOSSES = ("mse", "l1", "smooth_l1", "huber")
EXPORTERS = ("torchscript", "dynamo")
ACTIVATION_SCHEMES = ("asymmetric", "symmetric")
DATA_SUFFIXES = (".npz", ".parquet")

_TOP = {"model", "data", "loss", "lr", "batch_size", "seed", "val_fraction", "qat"}
_MODEL = {"factory", "kwargs", "init"}
_DATA = {"path", "inputs", "target", "generator", "samples", "seed"}
_QAT = {"epochs_fp32", "epochs_qat", "lr_qat", "input_names", "input_shape", "input_shapes",
        "output_names", "dynamic_axes", "opset", "exporter", "n_calibration", "activations", "distill", "reduce_range"}


@dataclass(frozen=True)
class DataSpec:
    """Where the training pairs come from: a file (npz keys / parquet columns) or a generator
    `fn(n, torch.Generator) -> (*inputs, target)`."""

    path: Path | None = None
    inputs: tuple = ()          # per forward() argument: a key, or (parquet) a list of columns
    target: Any = None          # a key, or (parquet) a list of columns
    generator: str | None = None
    samples: int = 0
    seed: int = 0

    def describe(self) -> str:
        return str(self.path) if self.path else f"generator {self.generator}"


@dataclass(frozen=True)
class QatSettings:
    """Everything one QAT run needs; the CLI's options override the config's values."""

    factory: str
    data: DataSpec
    kwargs: dict = field(default_factory=dict)
    init: Path | None = None  # a state_dict to start from (then epochs_fp32 may be 0)
    base_dir: Path = Path(".")  # relative paths in the config resolve against this
    loss: str = "mse"
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    val_fraction: float = 0.1
    epochs_fp32: int = 20
    epochs_qat: int = 10
    lr_qat: float | None = None  # None: lr / 10
    distill: float = 1.0  # QAT loss weight on the fp32 warm start's outputs (rest: the target)
    input_names: tuple[str, ...] | None = None
    input_shapes: tuple[tuple[int, ...], ...] | None = None
    output_names: tuple[str, ...] | None = None
    dynamic_axes: dict | None = None  # None: axis 0 of every input and output is "batch"
    opset: int | None = None  # None: 17 for torchscript, 18 (the lowest torchlib implements) for dynamo
    exporter: str = "torchscript"
    activations: str = "asymmetric"  # per-tensor int8 scheme of activations, in QAT and the PTQ
    reduce_range: bool = True  # 7-bit weights: exact on u8 x s8 kernels without VNNI too
    n_calibration: int = 64
    source: str = "run_qat"  # the config file, for error lines

    @property
    def effective_lr_qat(self) -> float:
        return self.lr_qat if self.lr_qat is not None else self.lr / 10

    def with_overrides(self, **kw) -> "QatSettings":
        kw = {k: v for k, v in kw.items() if v is not None}
        new = replace(self, **kw)
        check_numbers(new, label="option")
        return new

    def to_json(self) -> dict:
        d = asdict(self)
        d["base_dir"] = str(self.base_dir)
        d["init"] = str(self.init) if self.init else None
        d["data"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.data).items()}
        d["data"]["inputs"] = [list(i) if isinstance(i, (list, tuple)) else i for i in self.data.inputs]
        d["lr_qat"] = self.effective_lr_qat
        return d


# --------------------------------------------------------------------------- checks


class _Where:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, what: str, fix: str) -> UserError:
        return UserError(f"{self.source}: {key}: {what}; {fix}")


def _unknown(w: _Where, mapping: dict, allowed: set, prefix: str) -> None:
    for k in mapping:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), sorted(allowed), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(sorted(allowed))}"
            raise w.fail(f"{prefix}{k}", "unknown key", hint)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(w, key, v, lo=0) -> int:
    if not _is_int(v) or v < lo:
        raise w.fail(key, f"expected an integer >= {lo}, got {v!r}", f"write e.g. {key.split('.')[-1]}: {max(lo, 1)}")
    return v


def _pos_float(w, key, v) -> float:
    if not _is_num(v) or not v > 0:
        raise w.fail(key, f"expected a positive number, got {v!r}", f"write e.g. {key.split('.')[-1]}: 0.001")
    return float(v)


def _names(w, key, v) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(s, str) and s for s in v):
        raise w.fail(key, f"expected a list of names, got {v!r}", f"write e.g. {key.split('.')[-1]}: [input]")
    if len(set(v)) != len(v):
        raise w.fail(key, f"names repeat in {v}", "give every name once")
    return tuple(v)


def _shape(w, key, v) -> tuple[int, ...]:
    if not isinstance(v, list) or not v or not all(_is_int(d) and d >= 1 for d in v):
        raise w.fail(key, f"expected a list of positive integers (batch first), got {v!r}",
                     "write e.g. input_shape: [1, 6]")
    return tuple(v)


def check_numbers(s: QatSettings, *, label: str) -> None:
    """Range checks shared by config values and CLI overrides."""
    w = _Where(s.source)
    names = {"epochs_fp32": "--epochs-fp32", "epochs_qat": "--epochs-qat", "n_calibration": "--n-calibration",
             "lr_qat": "--lr-qat", "seed": "--seed"}
    for f, lo in (("epochs_fp32", 0), ("epochs_qat", 0), ("n_calibration", 1), ("seed", 0)):
        v = getattr(s, f)
        if not _is_int(v) or v < lo:
            key = names[f] if label == "option" else (f"qat.{f}" if f != "seed" else "seed")
            raise w.fail(key, f"expected an integer >= {lo}, got {v!r}", f"pass e.g. {max(lo, 1)}")
    if s.lr_qat is not None and (not _is_num(s.lr_qat) or not s.lr_qat > 0):
        key = "--lr-qat" if label == "option" else "qat.lr_qat"
        raise w.fail(key, f"expected a positive number, got {s.lr_qat!r}", "pass e.g. 0.0003")
    if s.exporter not in EXPORTERS:
        raise w.fail("exporter" if label == "option" else "qat.exporter", f"unknown exporter {s.exporter!r}",
                     f"use one of {', '.join(EXPORTERS)}")
    if s.opset is not None and (not _is_int(s.opset) or s.opset < 13):
        raise w.fail("opset" if label == "option" else "qat.opset", f"expected an integer >= 13, got {s.opset!r}",
                     "pass e.g. 17")


def _data(w: _Where, d, base: Path) -> DataSpec:
    if not isinstance(d, dict):
        raise w.fail("data", f"expected a mapping, got {type(d).__name__}",
                     "give data.path (.npz/.parquet), data.inputs and data.target")
    _unknown(w, d, _DATA, "data.")
    if ("path" in d) == ("generator" in d):
        raise w.fail("data", "needs exactly one of 'path' or 'generator'",
                     "give data.path: FILE.npz (or .parquet), or data.generator: FILE.py:FUNCTION")
    if "generator" in d:
        gen = d["generator"]
        if not isinstance(gen, str) or ":" not in gen:
            raise w.fail("data.generator", f"expected 'FILE.py:FUNCTION' or 'module:FUNCTION', got {gen!r}",
                         "write e.g. data.generator: examples.py:mlp_batch")
        if "samples" not in d:
            raise w.fail("data.samples", "missing (a generator needs a sample count)", "write e.g. data.samples: 4096")
        for k in ("inputs", "target"):
            if k in d:
                raise w.fail(f"data.{k}", "only applies to data.path", "remove it (a generator returns (*inputs, target))")
        return DataSpec(generator=gen, samples=_int(w, "data.samples", d["samples"], 2),
                        seed=_int(w, "data.seed", d.get("seed", 0)))
    if "samples" in d or "seed" in d:
        raise w.fail("data.samples" if "samples" in d else "data.seed", "only applies to data.generator",
                     "remove it, or use data.generator")
    raw = d["path"]
    if not isinstance(raw, str) or not raw:
        raise w.fail("data.path", f"expected a file path, got {raw!r}", "write e.g. data.path: train.npz")
    path = (base / raw) if not Path(raw).is_absolute() else Path(raw)
    if path.suffix.lower() not in DATA_SUFFIXES:
        raise w.fail("data.path", f"'{raw}' is neither .npz nor .parquet", "save the data with numpy.savez or as parquet")
    if not path.is_file():
        raise w.fail("data.path", f"file not found: {path}", "fix the path (relative to the config file)")
    for k in ("inputs", "target"):
        if k not in d:
            raise w.fail(f"data.{k}", "missing", f"name the {'keys/columns fed to forward()' if k == 'inputs' else 'key/column the loss compares against'}")
    parquet = path.suffix.lower() == ".parquet"

    def key_or_cols(key, v):
        if isinstance(v, str) and v:
            return v
        if parquet and isinstance(v, list) and v and all(isinstance(c, str) and c for c in v):
            return tuple(v)
        raise w.fail(key, f"expected a {'column name or a list of columns' if parquet else 'key'} , got {v!r}",
                     "name arrays in the file")

    ins = d["inputs"]
    if isinstance(ins, str):
        ins = [ins]
    if not isinstance(ins, list) or not ins:
        raise w.fail("data.inputs", f"expected a list (one entry per forward() argument), got {ins!r}",
                     "write e.g. data.inputs: [features]")
    inputs = tuple(key_or_cols(f"data.inputs[{i}]", v) for i, v in enumerate(ins))
    return DataSpec(path=path, inputs=inputs, target=key_or_cols("data.target", d["target"]))


def load_config(path: str | Path) -> QatSettings:
    """Read and validate a QAT config; relative paths resolve against the config's folder."""
    path = Path(path)
    src = str(path)
    w = _Where(src)
    if not path.is_file():
        raise UserError(f"{src}: config not found; pass --config PATH to a QAT YAML file")
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise UserError(f"{src}: {where}: not valid YAML ({getattr(e, 'problem', None) or e}); fix the syntax") from None
    except UnicodeDecodeError:
        raise UserError(f"{src}: not UTF-8 text; save the config as UTF-8") from None
    if not isinstance(doc, dict):
        raise UserError(f"{src}: expected a mapping at the top (model:, data:, loss:, qat:, ...); "
                        "see docs/qat.md")
    _unknown(w, doc, _TOP, "")
    base = path.resolve().parent
    for k in ("model", "data"):
        if k not in doc:
            raise w.fail(k, "missing", "see docs/qat.md for the config reference")
    m = doc["model"]
    if isinstance(m, str):
        m = {"factory": m}
    if not isinstance(m, dict):
        raise w.fail("model", f"expected a mapping, got {type(m).__name__}", "give model.factory: FILE.py:NAME")
    _unknown(w, m, _MODEL, "model.")
    fac = m.get("factory")
    if not isinstance(fac, str) or ":" not in fac or not fac.split(":", 1)[1]:
        raise w.fail("model.factory", f"expected 'FILE.py:NAME' or 'package.module:NAME', got {fac!r}",
                     "write e.g. model.factory: ../tiny/examples.py:MlpRegressor")
    kwargs = m.get("kwargs", {}) or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise w.fail("model.kwargs", f"expected a mapping of argument names, got {kwargs!r}", "write e.g. kwargs: {hidden: 32}")
    init = m.get("init")
    if init is not None:
        if not isinstance(init, str) or not init:
            raise w.fail("model.init", f"expected a path to a state_dict, got {init!r}", "write e.g. init: model.pt")
        init = Path(init) if Path(init).is_absolute() else base / init
        if not init.is_file():
            raise w.fail("model.init", f"file not found: {init}", "fix the path (relative to the config file)")
    data = _data(w, doc["data"], base)
    loss = doc.get("loss", "mse")
    if loss not in LOSSES:
        near = difflib.get_close_matches(str(loss), LOSSES, n=1)
        raise w.fail("loss", f"unknown loss {loss!r}", f"use one of {', '.join(LOSSES)}"
                     + (f" (did you mean '{near[0]}'?)" if near else ""))
    lr = _pos_float(w, "lr", doc.get("lr", 1e-3))
    batch = _int(w, "batch_size", doc.get("batch_size", 32), 1)
    seed = _int(w, "seed", doc.get("seed", 0))
    vf = doc.get("val_fraction", 0.1)
    if not _is_num(vf) or not 0 <= vf < 0.9:
        raise w.fail("val_fraction", f"expected a number in [0, 0.9), got {vf!r}", "write e.g. val_fraction: 0.1")
    q = doc.get("qat", {}) or {}
    if not isinstance(q, dict):
        raise w.fail("qat", f"expected a mapping, got {type(q).__name__}", "give qat.epochs_fp32, qat.epochs_qat, ...")
    _unknown(w, q, _QAT, "qat.")
    epochs_fp32 = _int(w, "qat.epochs_fp32", q.get("epochs_fp32", 20))
    epochs_qat = _int(w, "qat.epochs_qat", q.get("epochs_qat", 10))
    lr_qat = q.get("lr_qat")
    if lr_qat is not None:
        lr_qat = _pos_float(w, "qat.lr_qat", lr_qat)
    input_names = _names(w, "qat.input_names", q["input_names"]) if q.get("input_names") is not None else None
    if "input_shape" in q and "input_shapes" in q:
        raise w.fail("qat.input_shapes", "given together with qat.input_shape", "keep one")
    shapes = None
    if q.get("input_shape") is not None:
        shapes = (_shape(w, "qat.input_shape", q["input_shape"]),)
    elif q.get("input_shapes") is not None:
        v = q["input_shapes"]
        if not isinstance(v, list) or not v:
            raise w.fail("qat.input_shapes", f"expected a list of shapes, got {v!r}", "write e.g. [[1, 1, 16, 16], [1, 1, 16, 16]]")
        shapes = tuple(_shape(w, f"qat.input_shapes[{i}]", s) for i, s in enumerate(v))
    n_in = len(data.inputs) if data.path else None
    if input_names is not None and n_in is not None and len(input_names) != n_in:
        raise w.fail("qat.input_names", f"{len(input_names)} name(s) but data.inputs has {n_in}",
                     "give one input name per data input")
    if shapes is not None:
        n_names = len(input_names) if input_names is not None else n_in
        if n_names is not None and len(shapes) != n_names:
            raise w.fail("qat.input_shapes" if len(shapes) > 1 else "qat.input_shape",
                         f"{len(shapes)} shape(s) for {n_names} input(s)", "give one shape per input (input_shapes: [[...], ...])")
    output_names = _names(w, "qat.output_names", q["output_names"]) if q.get("output_names") is not None else None
    axes = q.get("dynamic_axes")
    if axes is not None:
        known = set(input_names or ()) | set(output_names or ())
        if not isinstance(axes, dict):
            raise w.fail("qat.dynamic_axes", f"expected a mapping name -> {{axis: label}}, got {axes!r}",
                         "write e.g. dynamic_axes: {features: {0: batch}}")
        for name, spec in axes.items():
            if known and name not in known:
                raise w.fail(f"qat.dynamic_axes.{name}", "names no input or output",
                             f"use one of {', '.join(sorted(known))}")
            if not isinstance(spec, dict) or not all(_is_int(a) and a >= 0 and isinstance(lbl, str) and lbl
                                                      for a, lbl in spec.items()):
                raise w.fail(f"qat.dynamic_axes.{name}", f"expected {{axis: label}}, got {spec!r}",
                             "write e.g. {0: batch}")
        axes = {k: dict(v) for k, v in axes.items()}
    opset = _int(w, "qat.opset", q["opset"], 13) if q.get("opset") is not None else None
    exporter = q.get("exporter", "torchscript")
    if exporter not in EXPORTERS:
        raise w.fail("qat.exporter", f"unknown exporter {exporter!r}", f"use one of {', '.join(EXPORTERS)}")
    distill = q.get("distill", 1.0)
    if not _is_num(distill) or not 0 <= distill <= 1:
        raise w.fail("qat.distill", f"expected a number in [0, 1], got {distill!r}",
                     "1 = match the fp32 warm start's outputs, 0 = the target only")
    rr = q.get("reduce_range", True)
    if not isinstance(rr, bool):
        raise w.fail("qat.reduce_range", f"expected true or false, got {rr!r}", "write reduce_range: true")
    acts = q.get("activations", "asymmetric")
    if acts not in ACTIVATION_SCHEMES:
        raise w.fail("qat.activations", f"unknown scheme {acts!r}", f"use one of {', '.join(ACTIVATION_SCHEMES)}")
    n_cal = _int(w, "qat.n_calibration", q.get("n_calibration", 64), 1)
    s = QatSettings(
        factory=fac, kwargs=dict(kwargs), init=init, distill=float(distill), data=data, base_dir=base, loss=loss, lr=lr, batch_size=batch,
        seed=seed, val_fraction=float(vf), epochs_fp32=epochs_fp32, epochs_qat=epochs_qat, lr_qat=lr_qat,
        input_names=input_names, input_shapes=shapes, output_names=output_names, dynamic_axes=axes,
        opset=opset, exporter=exporter, activations=acts, reduce_range=rr, n_calibration=n_cal, source=src,
    )
    return s
