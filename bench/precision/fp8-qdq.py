"""Writes an FP8 E4M3 Q/DQ copy of an ONNX model, as a quantization tool would: a QuantizeLinear/DequantizeLinear
pair into float8e4m3fn in front of every Conv, Gemm and MatMul with constant weights (per-tensor scale: the
largest |value| on a few calibration batches over 448) and those weights stored as float8e4m3fn with one scale
per output channel. Calibration inputs are random, shaped like the inputs of REFERENCE (baselines.py's
NAME.io_b1.npz): N(0,1) floats, integers below the largest the reference holds plus one. The model is first
converted to opset 19 (onnx.version_converter), the first with float8 QuantizeLinear.

    python3 fp8-qdq.py MODEL.onnx REFERENCE.npz OUT.onnx

Needs numpy, ml_dtypes, onnx and onnxruntime (the GPU machine has them).
"""
import sys

import ml_dtypes
import numpy as np
import onnx
import onnx.version_converter
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

source, reference, target = sys.argv[1:4]
model = onnx.version_converter.convert_version(onnx.load(source), 19)
graph = model.graph
weights = {t.name: t for t in graph.initializer}


def weight_axis(node):
    """The axis of the output channels in the node's constant weights, or None when it has none."""
    if len(node.input) < 2 or node.input[1] not in weights or len(weights[node.input[1]].dims) < 2:
        return None
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return 0 if attrs.get("transB", 0) else 1
    return 1 if node.op_type == "MatMul" and len(weights[node.input[1]].dims) == 2 else None


products = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and weight_axis(n) is not None]

rng = np.random.default_rng(1)
feeds = {}
with np.load(reference) as io:
    for key in io.files:
        if not key.startswith("input__"):
            continue
        value = io[key]
        shape = (8,) + value.shape[1:]
        if value.dtype.kind == "f":
            feeds[key[len("input__"):]] = rng.standard_normal(shape).astype(value.dtype)
        else:
            feeds[key[len("input__"):]] = rng.integers(0, int(value.max()) + 1, shape).astype(value.dtype)

probe = onnx.ModelProto()
probe.CopyFrom(model)
outputs = {o.name for o in probe.graph.output}
inputs = {i.name for i in probe.graph.input}
for node in products:
    if node.input[0] not in outputs | inputs:
        probe.graph.output.append(helper.make_empty_tensor_value_info(node.input[0]))
        outputs.add(node.input[0])
session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
amax = {name: float(np.abs(value).max()) for name, value in feeds.items()}
for name, value in zip(names, session.run(None, feeds)):
    amax[name] = float(np.abs(value).max())


def float8(name, values):
    raw = values.astype(np.float32).astype(ml_dtypes.float8_e4m3fn).tobytes()
    return helper.make_tensor(name, TensorProto.FLOAT8E4M3FN, values.shape, raw, raw=True)


added, nodes, pairs = [], [], set()
taken = {n.input[1] for n in products}
for node in graph.node:
    if node not in products:
        nodes.append(node)
        continue
    x, w, axis = node.input[0], node.input[1], weight_axis(node)
    if x not in pairs:
        pairs.add(x)
        added += [numpy_helper.from_array(np.array(max(amax[x], 1e-12) / 448, dtype=np.float32), f"{x}_fp8_scale"),
                  float8(f"{x}_fp8_zero", np.zeros((), dtype=np.float32))]
        nodes += [helper.make_node("QuantizeLinear", [x, f"{x}_fp8_scale", f"{x}_fp8_zero"], [f"{x}_fp8"]),
                  helper.make_node("DequantizeLinear", [f"{x}_fp8", f"{x}_fp8_scale", f"{x}_fp8_zero"], [f"{x}_fp8dq"])]
    array = numpy_helper.to_array(weights[w]).astype(np.float32)
    moved = np.moveaxis(array, axis, 0)
    scales = np.maximum(np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1), 1e-12) / 448
    shape = [1] * array.ndim
    shape[axis] = -1
    added += [float8(f"{w}_fp8", array / scales.reshape(shape)),
              numpy_helper.from_array(scales.astype(np.float32), f"{w}_fp8_scale")]
    nodes.append(helper.make_node("DequantizeLinear", [f"{w}_fp8", f"{w}_fp8_scale"], [f"{w}_fp8dq"], axis=axis))
    rewritten = onnx.NodeProto()
    rewritten.CopyFrom(node)
    rewritten.input[0] = f"{x}_fp8dq"
    rewritten.input[1] = f"{w}_fp8dq"
    nodes.append(rewritten)

del graph.node[:]
graph.node.extend(nodes)
kept = [t for t in graph.initializer if t.name not in taken]
del graph.initializer[:]
graph.initializer.extend(kept + added)
onnx.save(model, target)
print(f"{target}: {len(products)} products in FP8 E4M3, {len(pairs)} activation pairs")
