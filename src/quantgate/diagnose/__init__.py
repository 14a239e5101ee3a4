"""Which quantised nodes add the error: the figures behind `quantgate explain`, the node
exclusions `quantgate auto` searches, and the "why" of a failing gate row.

Two measures, both on a fixed set of inputs (a *probe*: the gate's input distribution drawn with
its own seed, or the entry's eval set), so that candidates are compared on the same samples:

- **kept in float** (the decision-grade one): re-produce the sidecar with one node kept in float
  and measure the drop again. The difference to the baseline is what keeping that node in float
  buys, interactions downstream included. It costs one quantisation per node.
- **error at the node's output** (cheap, for the gate's "why" and to pick which nodes to try
  first on large models): run both models with every intermediate tensor exposed and compare
  int8 with fp32 at each weight node's output and input; the rise of the normalised error from
  input to output is the error the node adds there. No re-quantisation.

`probe` makes the fixed inputs, `nodes` measures the error at each node's output, `kept` the drop
with a node kept in float and ranks a model's nodes by it (`explain_model`).
"""

from .kept import MAX_KEPT_TRIALS, Explanation, Remake, explain_model, kept_in_float, reason_for
from .nodes import ACTIVATION_SAMPLES, WHY_NODES, NodeError, activation_errors, why_nodes
from .probe import PROBE_SAMPLES, PROBE_SEED_OFFSET, Probe, make_probe

__all__ = [
    "ACTIVATION_SAMPLES",
    "MAX_KEPT_TRIALS",
    "PROBE_SAMPLES",
    "PROBE_SEED_OFFSET",
    "WHY_NODES",
    "Explanation",
    "NodeError",
    "Probe",
    "Remake",
    "activation_errors",
    "explain_model",
    "kept_in_float",
    "make_probe",
    "reason_for",
    "why_nodes",
]
