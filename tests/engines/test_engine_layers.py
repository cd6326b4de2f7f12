"""Reading what each engine layer runs in from TensorRT's engine inspector JSON
(engines/engine_layers.py). The JSON here follows the layout of TensorRT's documentation
(Developer Guide, "Engine Inspector": ``{"Layers": [{"Name", "LayerType", "Inputs":
[{"Format/Datatype"}], "Outputs": ...}]}``) and its format strings; a real engine's is read on
the GPU (tests/engines/test_tensorrt.py, test_tensorrt_int8.py)."""

from __future__ import annotations

import json

import pytest

from engines import engine_layers


def _layer(name: str, kind: str, inputs: list[str], outputs: list[str]) -> dict:
    def tensors(formats: list[str]) -> list[dict]:
        return [
            {"Name": f"{name}:{i}", "Location": "Device", "Dimensions": [8, 16, 52, 52],
             "Format/Datatype": f}
            for i, f in enumerate(formats)
        ]  # fmt: skip

    return {"Name": name, "LayerType": kind, "Inputs": tensors(inputs), "Outputs": tensors(outputs)}


INT8 = "Thirty-two wide channel vectorized row major Int8 format"
FP16 = "Channel major FP16 format where channel % 8 == 0"
FP32 = "Row major linear FP32"


@pytest.mark.parametrize(
    "text, expected",
    [
        (INT8, "int8"),
        (FP16, "fp16"),
        (FP32, "fp32"),
        ("Row major linear FP16 format", "fp16"),
        ("Half", "fp16"),  # later versions' short names
        ("Float", "fp32"),
        ("Row major linear Int32 format", "int32"),
        ("Row major linear BOOL format", "bool"),
        ("N/A due to dynamic shapes", "unknown"),  # inspected without a context
    ],
)
def test_tensor_types_from_format_strings(text, expected):
    assert engine_layers.tensor_type(text) == expected


def test_a_calibrated_engine_counts_int8_fp16_and_reformats():
    information = json.dumps(
        {
            "Layers": [
                _layer("Reformatting CopyNode for Input Tensor 0 to conv1", "Reformat",
                       [FP32], [INT8]),
                _layer("conv1 + leaky1", "CaskConvolution", [INT8], [INT8]),
                _layer("conv2 + leaky2", "CaskConvolution", [INT8], [INT8]),
                _layer("head_conv", "CaskConvolution", [INT8], [FP16]),  # int8 in, fp16 out
                _layer("PWN(sigmoid)", "PointWiseV2", [FP16], [FP16]),
                _layer("concat", "Concatenation", [FP16, FP16], [FP16]),
                _layer("Reformatting CopyNode for Output Tensor 0", "Reformat", [FP16], [FP32]),
            ],
            "Bindings": ["images", "output"],
        }
    )  # fmt: skip
    rows = engine_layers.layer_rows(information)
    assert [engine_layers.computes_in(r) for r in rows] == [
        "reformat", "int8", "int8", "int8", "fp16", "fp16", "reformat",
    ]  # fmt: skip
    counts = engine_layers.summary(rows)
    assert counts == {"int8": 3, "reformat": 2, "fp16": 2}
    assert engine_layers.describe(counts) == "int8 3, reformat 2, fp16 2"
    assert rows[3] == {
        "name": "head_conv", "kind": "CaskConvolution", "inputs": ["int8"], "outputs": ["fp16"],
    }  # fmt: skip


def test_an_engine_built_without_detailed_verbosity_says_so():
    names_only = json.dumps({"Layers": ["conv1 + leaky1", "head_conv"], "Bindings": []})
    rows = engine_layers.layer_rows(names_only)
    assert rows == []
    assert "no layer information" in engine_layers.describe(engine_layers.summary(rows))


def test_inspect_never_raises_for_a_report(caplog):
    class Broken:  # anything TensorRT raises while inspecting ends as an empty report
        def create_execution_context(self):
            raise RuntimeError("no GPU memory for a context")

    with caplog.at_level("INFO", logger="engines.engine_layers"):
        assert engine_layers.inspect(object(), Broken(), 8) == []
    assert "no GPU memory for a context" in caplog.text
