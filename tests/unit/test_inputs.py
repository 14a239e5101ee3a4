"""inputs.py's decisions pinned directly: the signature check between a model and its sidecar,
the integer ranges that fit a dtype, which element limit a sample breaks, the Gather axis that
gives an integer input its default range, and the draws for float ranges and bool inputs."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from quantgate.errors import UserError
from quantgate.inputs import check_same_signature, draw, plan_inputs
from quantgate.onnxio import TensorSig
from quantgate.rowblocks import InputPlan


def _sig(name: str, dtype: str, dims: tuple) -> TensorSig:
    return TensorSig(name, np.dtype(dtype), dims)


# -- the sidecar's signature ------------------------------------------------------------------------------
def test_a_sidecar_with_the_same_inputs_and_more_outputs_is_accepted():
    ins = [_sig("a", "float32", (1, 3)), _sig("b", "int64", (2,))]
    outs = [_sig("y", "float32", (1,))]
    extra = [_sig("y", "float32", (1,)), _sig("debug", "float32", (1,))]
    assert check_same_signature(ins, outs, list(ins), extra, "m.int8.onnx") is None


@pytest.mark.parametrize(
    ("q_ins", "listed"),
    [
        ([_sig("a", "float16", (1, 3)), _sig("b", "int64", (2,))], "a:float16, b:int64"),  # another dtype
        ([_sig("b", "int64", (2,)), _sig("a", "float32", (1, 3))], "b:int64, a:float32"),  # another order
        ([_sig("a", "float32", (1, 3))], "a:float32"),  # one missing
    ],
)
def test_a_sidecar_whose_inputs_differ_is_refused_with_both_lists(q_ins, listed):
    ins = [_sig("a", "float32", (1, 3)), _sig("b", "int64", (2,))]
    outs = [_sig("y", "float32", (1,))]
    with pytest.raises(UserError) as e:
        check_same_signature(ins, outs, q_ins, outs, "m.int8.onnx")
    assert str(e.value) == (
        f"m.int8.onnx: its inputs ({listed}) differ from the fp32 model's (a:float32, b:int64); "
        "re-produce the sidecar from this model"
    )


def test_a_sidecar_that_lacks_an_output_is_refused_naming_it():
    ins = [_sig("a", "float32", (1, 3))]
    outs = [_sig("y", "float32", (1,)), _sig("z", "float32", (1,)), _sig("w", "float32", (1,))]
    with pytest.raises(UserError) as e:
        check_same_signature(ins, outs, ins, [_sig("y", "float32", (1,))], "m.int8.onnx")
    assert str(e.value) == "m.int8.onnx: lacks output(s) z, w of the fp32 model; re-produce it"


# -- shapes and the element limit ---------------------------------------------------------------------------
def test_an_unnamed_symbolic_dim_is_shown_as_a_question_mark():
    sigs = [_sig("f", "float32", (None, 3))]
    with pytest.raises(UserError) as e:
        plan_inputs(sigs, {"f": {"shape": [4]}}, label="m.onnx")
    said = "m.onnx: quant_inputs.f.shape: has 1 dims, the model's input has 2 ([?, 3]); give one value per dim"
    assert str(e.value) == said
    with pytest.raises(UserError) as e:
        plan_inputs(sigs, {"f": {"shape": [4, 5]}}, label="m.onnx")
    assert "[4, 5] contradicts the model's fixed dims [?, 3]" in str(e.value)
    assert plan_inputs(sigs, {"f": {"shape": [4, 3]}})[0].shape == (4, 3)


def test_an_input_at_the_limit_that_brings_the_sample_over_it_is_named_as_the_sum(monkeypatch):
    monkeypatch.setenv("QUANTGATE_MAX_INPUT_ELEMENTS", "100")
    with pytest.raises(UserError) as e:
        plan_inputs([_sig("f", "float32", (40,)), _sig("g", "float32", (100,))], label="m.onnx")
    said = str(e.value)
    # g alone is exactly at the limit (allowed): the sum 40 + 100 is what is over it
    assert said.startswith(
        "m.onnx: input 'g': brings one sample to 140 elements across the inputs, over the limit of 100; "
    ), said


@pytest.mark.parametrize(
    ("dims", "spec", "given"),
    [((101,), {}, "dims"), (("n",), {"dims": {"n": 200}}, "dims"), (("n", 1), {"shape": [200, 1]}, "shape")],
)
def test_the_element_limit_names_the_field_the_shape_came_from(monkeypatch, dims, spec, given):
    monkeypatch.setenv("QUANTGATE_MAX_INPUT_ELEMENTS", "100")
    with pytest.raises(UserError) as e:
        plan_inputs([_sig("f", "float32", dims)], {"f": spec})
    assert f"give a smaller quant_inputs.f.{given}, or " in str(e.value)


# -- integer ranges -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("dtype", "low", "high"), [("uint8", 0, 256), ("int8", -128, 128), ("uint8", 0, 255)])
def test_an_integer_range_up_to_the_dtypes_last_value_is_accepted_and_drawn(dtype, low, high):
    plans = plan_inputs([_sig("i", dtype, (4096,))], {"i": {"low": low, "high": high}})
    assert (plans[0].low, plans[0].high) == (low, high)
    x = draw(plans, 1, 0)[0]["i"]
    assert x.dtype == np.dtype(dtype)
    # 4096 draws of 256 (or 255) values: both ends of [low, high) appear, nothing outside it
    assert int(x.min()) == low and int(x.max()) == high - 1


@pytest.mark.parametrize(("dtype", "low", "high"), [("uint8", 0, 257), ("int8", -129, 0), ("int8", 0, 129)])
def test_an_integer_range_one_past_the_dtype_is_refused(dtype, low, high):
    with pytest.raises(UserError, match=f"does not fit {dtype}"):
        plan_inputs([_sig("i", dtype, (2,))], {"i": {"low": low, "high": high}})


def _gather_model(axis: int | None) -> object:
    table = numpy_helper.from_array(np.zeros((50, 8), dtype=np.float32), "table")
    kw = {} if axis is None else {"axis": axis}
    node = helper.make_node("Gather", ["table", "ids"], ["y"], **kw)
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [3])
    return helper.make_model(helper.make_graph([node], "g", [ids], [], [table]))


@pytest.mark.parametrize(("axis", "rows"), [(None, 50), (0, 50), (1, 8), (-1, 8), (-2, 50)])
def test_an_integer_input_that_indexes_a_table_is_drawn_below_its_length_on_the_gathered_axis(axis, rows):
    plan = plan_inputs([_sig("ids", "int64", (3,))], model=_gather_model(axis))[0]
    assert (plan.low, plan.high, plan.source) == (0.0, rows, "embedding rows")


def test_a_gather_axis_past_the_table_is_no_table():
    """Axis 2 of a rank-2 table is invalid ONNX (the checker refuses it); the input plan keeps the
    default range rather than reading a dim the table does not have."""
    plan = plan_inputs([_sig("ids", "int64", (3,))], model=_gather_model(2))[0]
    assert plan.source == "signature" and plan.high != 50 and plan.high != 8


# -- draws --------------------------------------------------------------------------------------------------
def test_a_float_range_scales_the_unit_draws():
    unit = draw([InputPlan("x", "float32", (256,), 0.0, 1.0, "signature")], 3, 4)
    double = draw([InputPlan("x", "float32", (256,), 0.0, 2.0, "spec range")], 3, 4)
    for u, d in zip(unit, double, strict=True):
        assert np.array_equal(d["x"], 2 * u["x"])  # times 2 is exact in float32
    assert max(float(d["x"].max()) for d in double) > 1.0


def test_bool_inputs_are_fair_coin_flips_drawn_as_the_module_documents():
    plans = [InputPlan("f", "float32", (2,), 0.0, 1.0, "signature"), InputPlan("b", "bool", (1000,), 0.0, 2.0, "")]
    feeds = draw(plans, 2, 3)
    # the documented order, from a second generator: per sample, each input in turn;
    # bool is rng.random() < 0.5
    rng = np.random.default_rng(3)
    for feed in feeds:
        assert np.array_equal(feed["f"], rng.random((2,), dtype=np.float32))
        assert np.array_equal(feed["b"], rng.random((1000,)) < 0.5)
        assert feed["b"].dtype == np.bool_ and 400 < int(feed["b"].sum()) < 600
