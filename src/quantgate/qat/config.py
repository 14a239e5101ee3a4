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

`load_config` reads one section at a time (the document, model, data, the top-level numbers,
qat); the type/range check of every scalar key is one entry of `checks.CHECKS`, which the
command line's overrides go through too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import UserError, param
from .checks import (
    ACTIVATION_SCHEMES,
    CHECKS,
    EXPORTERS,
    LOSSES,
    Where,
    check_numbers,
    is_int,
    name_list,
    shape_list,
    unknown_keys,
)

__all__ = [
    "ACTIVATION_SCHEMES",
    "DATA_SUFFIXES",
    "EXPORTERS",
    "LOSSES",
    "DataSpec",
    "QatSettings",
    "check_numbers",
    "load_config",
]

DATA_SUFFIXES = (".npz", ".parquet")

_TOP = {"model", "data", "loss", "lr", "batch_size", "seed", "val_fraction", "qat"}
_MODEL = {"factory", "kwargs", "init"}
_DATA = {"path", "inputs", "target", "generator", "samples", "seed"}
_QAT = {
    "epochs_fp32",
    "epochs_qat",
    "lr_qat",
    "input_names",
    "input_shape",
    "input_shapes",
    "output_names",
    "dynamic_axes",
    "opset",
    "exporter",
    "n_calibration",
    "activations",
    "distill",
    "reduce_range",
}
_TOP_NUMBERS = ("loss", "lr", "batch_size", "seed", "val_fraction")  # the top-level keys that are no section


@dataclass(frozen=True)
class DataSpec:
    """Where the training pairs come from: a file (npz keys / parquet columns) or a generator
    `fn(n, torch.Generator) -> (*inputs, target)`."""

    path: Path | None = None
    inputs: tuple = ()  # per forward() argument: a key, or (parquet) a list of columns
    target: Any = None  # a key, or (parquet) a list of columns
    generator: str | None = None
    samples: int = 0
    seed: int = 0

    def describe(self) -> str:
        return str(self.path) if self.path else f"generator {self.generator}"


class ResolvedIO(NamedTuple):
    """The export's names and shapes, once `validate.resolve_io` has filled them in."""

    input_names: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_names: tuple[str, ...]


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
    nodes_to_exclude: tuple[str, ...] = ()  # kept in float by the final static PTQ (quant_nodes_to_exclude)
    source: str = "run_qat"  # the config file, for error lines

    @property
    def effective_lr_qat(self) -> float:
        return self.lr_qat if self.lr_qat is not None else self.lr / 10

    @property
    def resolved_io(self) -> ResolvedIO:
        """Input names, input shapes and output names of settings passed through `validate.resolve_io`."""
        if self.input_names is None or self.input_shapes is None or self.output_names is None:
            raise ValueError(f"{self.source}: the export's names and shapes are not resolved yet (see resolve_io)")
        return ResolvedIO(self.input_names, self.input_shapes, self.output_names)

    def with_overrides(self, **kw) -> QatSettings:
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


# --------------------------------------------------------------------------- reading


def _default(key: str):
    """A key's default: the settings' own (DataSpec's for data.*)."""
    cls = DataSpec if key.startswith("data.") else QatSettings
    return next(f.default for f in fields(cls) if f.name == key.split(".")[-1])


def _value(w: Where, section: dict, key: str):
    """The checked value of `key` (dotted) read from its config `section`, or its default."""
    return CHECKS[key].verify(w, key, section.get(key.split(".")[-1], _default(key)))


def _relative(base: Path, raw: str) -> Path:
    return Path(raw) if Path(raw).is_absolute() else base / raw


def _document(path: Path, w: Where) -> dict:
    """The YAML file as a mapping with known top-level keys, model and data among them."""
    if not path.is_file():
        raise UserError("config not found", subject=w.source, fix=f"pass {param('config')} PATH to a QAT YAML file")
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(
            f"not valid YAML ({getattr(e, 'problem', None) or e})",
            subject=w.source,
            line=mark.line + 1 if mark else None,
            fix="fix the syntax",
        ) from None
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", subject=w.source, fix="save the config as UTF-8") from None
    if not isinstance(doc, dict):
        raise UserError(
            "expected a mapping at the top (model:, data:, loss:, qat:, ...)", subject=w.source, fix="see docs/qat.md"
        )
    unknown_keys(w, doc, _TOP, "")
    for k in ("model", "data"):
        if k not in doc:
            raise w.fail(k, "missing", "see docs/qat.md for the config reference")
    return doc


def _model(w: Where, m, base: Path) -> dict:
    """model: (or model: FILE.py:NAME) -> factory, kwargs, init."""
    if isinstance(m, str):
        m = {"factory": m}
    if not isinstance(m, dict):
        raise w.fail("model", f"expected a mapping, got {type(m).__name__}", "give model.factory: FILE.py:NAME")
    unknown_keys(w, m, _MODEL, "model.")
    fac = m.get("factory")
    if not isinstance(fac, str) or ":" not in fac or not fac.split(":", 1)[1]:
        raise w.fail(
            "model.factory",
            f"expected 'FILE.py:NAME' or 'package.module:NAME', got {fac!r}",
            "write e.g. model.factory: ../tiny/examples.py:MlpRegressor",
        )
    kwargs = m.get("kwargs", {}) or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise w.fail(
            "model.kwargs", f"expected a mapping of argument names, got {kwargs!r}", "write e.g. kwargs: {hidden: 32}"
        )
    init = m.get("init")
    if init is not None:
        if not isinstance(init, str) or not init:
            raise w.fail("model.init", f"expected a path to a state_dict, got {init!r}", "write e.g. init: model.pt")
        init = _relative(base, init)
        if not init.is_file():
            raise w.fail("model.init", f"file not found: {init}", "fix the path (relative to the config file)")
    return {"factory": fac, "kwargs": dict(kwargs), "init": init}


def _data(w: Where, d, base: Path) -> DataSpec:
    """data: exactly one of a file (path, inputs, target) or a generator (generator, samples, seed)."""
    if not isinstance(d, dict):
        raise w.fail(
            "data",
            f"expected a mapping, got {type(d).__name__}",
            "give data.path (.npz/.parquet), data.inputs and data.target",
        )
    unknown_keys(w, d, _DATA, "data.")
    if ("path" in d) == ("generator" in d):
        raise w.fail(
            "data",
            "needs exactly one of 'path' or 'generator'",
            "give data.path: FILE.npz (or .parquet), or data.generator: FILE.py:FUNCTION",
        )
    return _generator_data(w, d) if "generator" in d else _file_data(w, d, base)


def _generator_data(w: Where, d: dict) -> DataSpec:
    gen = d["generator"]
    if not isinstance(gen, str) or ":" not in gen:
        raise w.fail(
            "data.generator",
            f"expected 'FILE.py:FUNCTION' or 'module:FUNCTION', got {gen!r}",
            "write e.g. data.generator: examples.py:mlp_batch",
        )
    if "samples" not in d:
        raise w.fail("data.samples", "missing (a generator needs a sample count)", "write e.g. data.samples: 4096")
    for k in ("inputs", "target"):
        if k in d:
            raise w.fail(f"data.{k}", "only applies to data.path", "remove it (a generator returns (*inputs, target))")
    return DataSpec(
        generator=gen,
        samples=CHECKS["data.samples"].verify(w, "data.samples", d["samples"]),
        seed=_value(w, d, "data.seed"),
    )


def _file_data(w: Where, d: dict, base: Path) -> DataSpec:
    if "samples" in d or "seed" in d:
        raise w.fail(
            "data.samples" if "samples" in d else "data.seed",
            "only applies to data.generator",
            "remove it, or use data.generator",
        )
    raw = d["path"]
    if not isinstance(raw, str) or not raw:
        raise w.fail("data.path", f"expected a file path, got {raw!r}", "write e.g. data.path: train.npz")
    path = _relative(base, raw)
    if path.suffix.lower() not in DATA_SUFFIXES:
        raise w.fail(
            "data.path", f"'{raw}' is neither .npz nor .parquet", "save the data with numpy.savez or as parquet"
        )
    if not path.is_file():
        raise w.fail("data.path", f"file not found: {path}", "fix the path (relative to the config file)")
    for k in ("inputs", "target"):
        if k not in d:
            what = "keys/columns fed to forward()" if k == "inputs" else "key/column the loss compares against"
            raise w.fail(f"data.{k}", "missing", f"name the {what}")
    parquet = path.suffix.lower() == ".parquet"
    ins = d["inputs"]
    if isinstance(ins, str):
        ins = [ins]
    if not isinstance(ins, list) or not ins:
        raise w.fail(
            "data.inputs",
            f"expected a list (one entry per forward() argument), got {ins!r}",
            "write e.g. data.inputs: [features]",
        )
    inputs = tuple(_key_or_columns(w, f"data.inputs[{i}]", v, parquet) for i, v in enumerate(ins))
    return DataSpec(path=path, inputs=inputs, target=_key_or_columns(w, "data.target", d["target"], parquet))


def _key_or_columns(w: Where, key: str, v, parquet: bool):
    """An npz key, or (parquet) a column name or a list of columns stacked into one array."""
    if isinstance(v, str) and v:
        return v
    if parquet and isinstance(v, list) and v and all(isinstance(c, str) and c for c in v):
        return tuple(v)
    raise w.fail(
        key,
        f"expected a {'column name or a list of columns' if parquet else 'key'} , got {v!r}",
        "name arrays in the file",
    )


def _qat(w: Where, q, data: DataSpec) -> dict:
    """qat: the epochs and learning rate of the fine-tune, the export's inputs and outputs, the
    exporter and the int8 scheme."""
    if not isinstance(q, dict):
        raise w.fail("qat", f"expected a mapping, got {type(q).__name__}", "give qat.epochs_fp32, qat.epochs_qat, ...")
    unknown_keys(w, q, _QAT, "qat.")
    out = {k: _value(w, q, f"qat.{k}") for k in ("epochs_fp32", "epochs_qat", "lr_qat")}
    out.update(_export_io(w, q, data))
    for k in ("opset", "exporter", "distill", "reduce_range", "activations", "n_calibration"):
        out[k] = _value(w, q, f"qat.{k}")
    return out


def _export_io(w: Where, q: dict, data: DataSpec) -> dict:
    """The export's input names and shapes (as many as data.inputs), output names, dynamic axes."""
    input_names = name_list(w, "qat.input_names", q["input_names"]) if q.get("input_names") is not None else None
    shapes = _input_shapes(w, q)
    n_in = len(data.inputs) if data.path else None
    if input_names is not None and n_in is not None and len(input_names) != n_in:
        raise w.fail(
            "qat.input_names",
            f"{len(input_names)} name(s) but data.inputs has {n_in}",
            "give one input name per data input",
        )
    if shapes is not None:
        n_names = len(input_names) if input_names is not None else n_in
        if n_names is not None and len(shapes) != n_names:
            raise w.fail(
                "qat.input_shapes" if len(shapes) > 1 else "qat.input_shape",
                f"{len(shapes)} shape(s) for {n_names} input(s)",
                "give one shape per input (input_shapes: [[...], ...])",
            )
    output_names = name_list(w, "qat.output_names", q["output_names"]) if q.get("output_names") is not None else None
    axes = _dynamic_axes(w, q.get("dynamic_axes"), set(input_names or ()) | set(output_names or ()))
    return {"input_names": input_names, "input_shapes": shapes, "output_names": output_names, "dynamic_axes": axes}


def _input_shapes(w: Where, q: dict) -> tuple | None:
    if "input_shape" in q and "input_shapes" in q:
        raise w.fail("qat.input_shapes", "given together with qat.input_shape", "keep one")
    if q.get("input_shape") is not None:
        return (shape_list(w, "qat.input_shape", q["input_shape"]),)
    v = q.get("input_shapes")
    if v is None:
        return None
    if not isinstance(v, list) or not v:
        raise w.fail(
            "qat.input_shapes", f"expected a list of shapes, got {v!r}", "write e.g. [[1, 1, 16, 16], [1, 1, 16, 16]]"
        )
    return tuple(shape_list(w, f"qat.input_shapes[{i}]", s) for i, s in enumerate(v))


def _dynamic_axes(w: Where, axes, known: set) -> dict | None:
    """{name: {axis: label}}; names checked against `known` (the configured names, if any)."""
    if axes is None:
        return None
    if not isinstance(axes, dict):
        raise w.fail(
            "qat.dynamic_axes",
            f"expected a mapping name -> {{axis: label}}, got {axes!r}",
            "write e.g. dynamic_axes: {features: {0: batch}}",
        )
    for name, spec in axes.items():
        if known and name not in known:
            raise w.fail(
                f"qat.dynamic_axes.{name}", "names no input or output", f"use one of {', '.join(sorted(known))}"
            )
        if not isinstance(spec, dict) or not all(
            is_int(a) and a >= 0 and isinstance(lbl, str) and lbl for a, lbl in spec.items()
        ):
            raise w.fail(f"qat.dynamic_axes.{name}", f"expected {{axis: label}}, got {spec!r}", "write e.g. {0: batch}")
    return {k: dict(v) for k, v in axes.items()}


def load_config(path: str | Path) -> QatSettings:
    """Read and validate a QAT config; relative paths resolve against the config's folder."""
    path = Path(path)
    w = Where(str(path))
    doc = _document(path, w)
    base = path.resolve().parent
    model = _model(w, doc["model"], base)
    data = _data(w, doc["data"], base)
    top = {k: _value(w, doc, k) for k in _TOP_NUMBERS}
    qat = _qat(w, doc.get("qat", {}) or {}, data)
    return QatSettings(**model, data=data, base_dir=base, **top, **qat, source=w.source)
