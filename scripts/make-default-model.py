"""Writes Kiln's bundled default model, models/tinycnn, as an ONNX backend test case.

A small image classifier (Conv-BatchNorm-Relu, MaxPool, a residual block, GlobalAveragePool, Gemm, Softmax) on
3x32x32 inputs with seeded random weights, plus one input and the expected output computed by onnx's reference
evaluator, so `kiln verify models/tinycnn` checks it. Run with the conformance venv's Python:

    .conformance/suite/.venv/bin/python scripts/make-default-model.py
"""
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

rng = np.random.default_rng(2026)


def weight(name, *shape, scale=None):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    w = (rng.standard_normal(shape) * (scale or np.sqrt(2.0 / fan_in))).astype(np.float32)
    return numpy_helper.from_array(w, name)


inits = [
    weight("conv1.w", 16, 3, 3, 3), numpy_helper.from_array(np.zeros(16, np.float32), "conv1.b"),
    numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "bn1.scale"),
    numpy_helper.from_array(rng.uniform(-0.1, 0.1, 16).astype(np.float32), "bn1.bias"),
    numpy_helper.from_array(rng.uniform(-0.1, 0.1, 16).astype(np.float32), "bn1.mean"),
    numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "bn1.var"),
    weight("conv2.w", 16, 16, 3, 3), numpy_helper.from_array(np.zeros(16, np.float32), "conv2.b"),
    weight("conv3.w", 32, 16, 1, 1), numpy_helper.from_array(np.zeros(32, np.float32), "conv3.b"),
    weight("fc.w", 10, 32), numpy_helper.from_array(np.zeros(10, np.float32), "fc.b"),
]
nodes = [
    helper.make_node("Conv", ["image", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["b1"], name="bn1"),
    helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
    helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
    helper.make_node("Add", ["r2", "p1"], ["res"], name="residual"),
    helper.make_node("Conv", ["res", "conv3.w", "conv3.b"], ["c3"], name="conv3"),
    helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
    helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name="gap"),
    helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
    helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
]
graph = helper.make_graph(
    nodes, "tinycnn",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
    inits,
)
model = helper.make_model(graph, producer_name="kiln-default-model", opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)

root = pathlib.Path(__file__).resolve().parent.parent / "models" / "tinycnn"
data = root / "test_data_set_0"
data.mkdir(parents=True, exist_ok=True)
onnx.save(model, root / "model.onnx")
image = rng.uniform(0, 1, (2, 3, 32, 32)).astype(np.float32)
(probabilities,) = ReferenceEvaluator(model).run(None, {"image": image})
(data / "input_0.pb").write_bytes(numpy_helper.from_array(image, "image").SerializeToString())
(data / "output_0.pb").write_bytes(numpy_helper.from_array(probabilities, "probabilities").SerializeToString())
print(f"wrote {root}: {sum(p.stat().st_size for p in root.rglob('*') if p.is_file())} bytes")
