"""What an int8 sidecar really quantised: its weight-bearing nodes and the share of the fp32
model's weight parameters it stores in 8 bits.

A sidecar can carry int8 operators and still be fp32 in all but name: dynamic PTQ of a conv net
quantises its one MatMul and leaves every Conv in float (the file barely shrinks, and the gate
would pass it). Coverage makes that visible in every producer report and gate row.

A *weight* is a float initialiser (or Constant) of rank >= 2 that a compute node reads: conv
kernels, matmul and gemm matrices, embedding tables. Biases, scales and shapes (rank <= 1) are
not counted. In the sidecar a weight is *int8* when it is stored in 8 bits and read by the node
directly (MatMulInteger, ConvInteger, QLinearConv, a Gather of an 8-bit table) or through a
DequantizeLinear (QDQ). Nodes are named by `node_key`: their name, else their first output.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import onnx

from .results import Coverage

_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
_BYTES8 = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
_HELPERS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Constant"}
# Ops that pass a constant through unchanged in content (an exporter's transposed weight, a cast):
# the node that reads their output reads the weight.
_PASS_THROUGH = {"Transpose", "Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze"}
# Below this share of its weights in int8, or this saving in size, a sidecar gets a warning.
MIN_SHARE = 0.5
MIN_SAVING = 0.10


def node_key(node: onnx.NodeProto) -> str:
    """How quantgate names a node (registry exclusions, explain): its name, else its first output."""
    return node.name or (node.output[0] if node.output else node.op_type)


@dataclass(frozen=True)
class WeightNode:
    key: str
    op_type: str
    params: int  # elements of the rank >= 2 float tensors it reads
    weights: tuple[str, ...]  # the names of those tensors


def _constants(graph: onnx.GraphProto) -> dict[str, tuple[int, tuple[int, ...]]]:
    """name -> (data type, dims) of every initialiser and Constant-node tensor."""
    out = {t.name: (t.data_type, tuple(t.dims)) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value" and a.HasField("t"):
                    out[n.output[0]] = (a.t.data_type, tuple(a.t.dims))
    return out


def _sources(graph: onnx.GraphProto, consts: dict) -> dict[str, str]:
    """tensor -> the constant it carries, for every constant and every tensor derived from one by
    a pass-through op or a DequantizeLinear (whose source keeps its 8-bit type)."""
    out = {name: name for name in consts}
    for n in graph.node:  # graphs are topologically sorted: a source is known before its readers
        if n.input and n.output and n.input[0] in out and n.op_type in _PASS_THROUGH | {"DequantizeLinear"}:
            out[n.output[0]] = out[n.input[0]]
    return out


def _elements(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= max(int(d), 0)
    return n


def _scopes(graph: onnx.GraphProto, outer: dict, top: bool = True):
    """(node, constants in scope, constant sources, whether it is in the top graph) for every node
    of `graph` and of the If/Loop/Scan bodies inside it (a body reads the outer scope's constants)."""
    consts = {**outer, **_constants(graph)}
    sources = {**{k: k for k in outer}, **_sources(graph, consts)}
    for n in graph.node:
        yield n, consts, sources, top
        for a in n.attribute:
            bodies = ([a.g] if a.HasField("g") else []) + list(a.graphs)
            for body in bodies:
                yield from _scopes(body, consts, False)


def _weights_read(n: onnx.NodeProto, consts: dict, sources: dict) -> tuple[str, ...]:
    srcs = dict.fromkeys(sources[i] for i in n.input if i in sources)
    return tuple(s for s in srcs if consts[s][0] in _FLOATS and len(consts[s][1]) >= 2)


def all_weight_nodes(model: onnx.ModelProto) -> list[tuple[WeightNode, bool]]:
    """Every compute node that reads a float weight of rank >= 2, with whether it is in the top
    graph (the quantisers do not enter If/Loop bodies: a weight there stays float)."""
    out = []
    for n, consts, sources, top in _scopes(model.graph, {}):
        if n.op_type in _HELPERS or n.op_type in _PASS_THROUGH:
            continue
        names = _weights_read(n, consts, sources)
        if names:
            out.append((WeightNode(node_key(n), n.op_type, sum(_elements(consts[i][1]) for i in names), names), top))
    return out


def weight_nodes(model: onnx.ModelProto) -> list[WeightNode]:
    """The weight nodes of the top graph: the ones a quantiser can quantise or keep in float."""
    return [w for w, top in all_weight_nodes(model) if top]


def weight_params(model: onnx.ModelProto) -> int:
    """Elements of the distinct float weights compute nodes read, in every graph of the model
    (a tied weight counts once)."""
    sizes: dict[str, int] = {}
    for n, consts, sources, _top in _scopes(model.graph, {}):
        if n.op_type in _HELPERS or n.op_type in _PASS_THROUGH:
            continue
        for w in _weights_read(n, consts, sources):
            sizes[w] = _elements(consts[w][1])
    return sum(sizes.values())


def measure(fp32: onnx.ModelProto, int8: onnx.ModelProto) -> Coverage:
    """Coverage of the sidecar `int8` against the fp32 model it was made from. Both may be
    loaded without their external data: only tensor types and dims are read."""
    fp32_nodes = [w for w, _top in all_weight_nodes(fp32)]
    keys = {w.key for w in fp32_nodes}
    total = weight_params(fp32)
    int8_weights: dict[str, int] = {}
    int8_nodes = 0
    float_ops: collections.Counter[str] = collections.Counter()
    float_nodes: list[str] = []
    for n, consts, sources, _top in _scopes(int8.graph, {}):
        if n.op_type in _HELPERS or n.op_type in _PASS_THROUGH:
            continue
        q = f = False
        for i in n.input:
            if i not in sources:
                continue
            src = sources[i]
            if len(consts[src][1]) < 2:
                continue
            if consts[src][0] in _BYTES8:
                int8_weights[src] = _elements(consts[src][1])
                q = True
            elif consts[src][0] in _FLOATS:
                f = True
        if q:
            int8_nodes += 1
        elif f:
            float_ops[n.op_type] += 1
            float_nodes.append(_fp32_key(node_key(n), keys))
    int8_params = sum(int8_weights.values())
    share = min(1.0, int8_params / total) if total else None
    return Coverage(
        weight_nodes=len(fp32_nodes),
        int8_nodes=min(int8_nodes, len(fp32_nodes)),
        weight_params=total,
        int8_params=min(int8_params, total),
        int8_share=None if share is None else round(share, 6),
        float_ops=dict(sorted(float_ops.items())),
        float_nodes=tuple(float_nodes),
    )


# What ONNX Runtime's quantisers append to a node's name when they rewrite it (a Gemm becomes
# `<name>_MatMul` + `<name>_Add` in dynamic PTQ; QOperator nodes get `_quant`).
_REWRITE_SUFFIXES = ("_MatMul", "_quant", "_MatMul_quant")


def _fp32_key(name: str, keys: set[str]) -> str:
    """The fp32 node a sidecar's node came from, by name (its own name when none is found)."""
    if name in keys:
        return name
    for suffix in _REWRITE_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in keys:
            return name[: -len(suffix)]
    return name


def quantiser_names(keys: tuple[str, ...]) -> list[str]:
    """The names to hand ONNX Runtime's `nodes_to_exclude` for fp32 nodes `keys`: each name, and
    the name its rewrite of a Gemm gets (`_REWRITE_SUFFIXES`)."""
    return [*keys, *(k + "_MatMul" for k in keys)]


def float_ops_text(c: Coverage) -> str:
    return ", ".join(f"{v} {k}" for k, v in c.float_ops.items()) or "none"


def problems(c: Coverage, size_ratio: float | None, fix: str) -> tuple[str, ...]:
    """Warnings for a sidecar that is int8 in name only (under `MIN_SHARE` of its weights in
    int8) or saves under `MIN_SAVING` of the size; `fix` is the command that would do better."""
    if c.int8_share is not None and c.int8_share < MIN_SHARE:
        return (
            f"int8 in name only: {c.int8_share:.0%} of the weights are stored in int8 ({c.int8_nodes} of "
            f"{c.weight_nodes} weight nodes); left in float: {float_ops_text(c)}; {fix}",
        )
    if size_ratio is not None and size_ratio > 1.0 - MIN_SAVING and size_ratio <= 1.0:
        left = (
            f"left in float: {float_ops_text(c)}; {fix}"
            if c.float_ops
            else (
                "every weight is in int8 already: at this size the scales, zero points and added nodes "
                "eat the saving; keep fp32 (quant_mode fp32) unless int8 is faster where it runs"
            )
        )
        return (f"saves only {1.0 - size_ratio:.0%} of the size (×{size_ratio:.2f}); {left}",)
    return ()
