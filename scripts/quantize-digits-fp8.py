#!/usr/bin/env python3
"""Writes models/digits-fp8: the default digits model explicitly quantized to FP8 E4M3, as a quantization
tool would hand it to an inference engine: a QuantizeLinear/DequantizeLinear pair into float8e4m3fn in front
of every convolution and the final Gemm (one scale per tensor, the largest absolute value the calibration
split gives it over 448, E4M3's largest number) and weights stored as float8e4m3fn with one scale per output
channel. Biases stay float32. ONNX Runtime's outputs on the test split are the reference (graph optimizations
off, so the Q/DQ graph runs as it is defined).

    python3 scripts/quantize-digits-fp8.py [--source models/digits] [--out models/digits-fp8]

reference.npz holds input__input, output__logits and labels. Needs numpy, ml_dtypes, onnx and onnxruntime.
"""
import argparse
import os

import numpy as np

E4M3_MAX = 448.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="models/digits")
    parser.add_argument("--out", default="models/digits-fp8")
    args = parser.parse_args()

    import ml_dtypes
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(os.path.join(args.source, "model.onnx"))
    graph = model.graph
    products = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    weights = {t.name: t for t in graph.initializer}

    # Calibration: the largest |value| each product's input takes on the calibration split.
    calibration = np.load(os.path.join(args.source, "calibration.npz"))["input__input"]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for node in products:
        if node.input[0] not in known and node.input[0] != graph.input[0].name:
            probe.graph.output.append(helper.make_empty_tensor_value_info(node.input[0]))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    amax = {graph.input[0].name: float(np.abs(calibration).max())}
    for start in range(0, len(calibration), 64):
        batch = calibration[start:start + 64]
        for name, value in zip(names, session.run(None, {graph.input[0].name: batch})):
            amax[name] = max(amax.get(name, 0.0), float(np.abs(value).max()))

    def float8_tensor(name, values):
        raw = values.astype(np.float32).astype(ml_dtypes.float8_e4m3fn).tobytes()
        return helper.make_tensor(name, TensorProto.FLOAT8E4M3FN, values.shape, raw, raw=True)

    nodes = []
    initializers = [t for t in graph.initializer if t.name not in {n.input[1] for n in products}]
    for node in graph.node:
        if node in products:
            x, w = node.input[0], node.input[1]
            scale = max(amax[x], 1e-12) / E4M3_MAX
            initializers += [
                numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{x}_scale"),
                float8_tensor(f"{x}_zero", np.zeros((), dtype=np.float32)),
            ]
            nodes += [
                helper.make_node("QuantizeLinear", [x, f"{x}_scale", f"{x}_zero"], [f"{x}_quantized"],
                                 name=f"{node.name}_input_q"),
                helper.make_node("DequantizeLinear", [f"{x}_quantized", f"{x}_scale", f"{x}_zero"],
                                 [f"{x}_dequantized"], name=f"{node.name}_input_dq"),
            ]
            # Conv weights [M, C, kh, kw] and the Gemm's [N, K] (transB=1): one scale per row along axis 0.
            array = numpy_helper.to_array(weights[w]).astype(np.float32)
            rows = array.reshape(array.shape[0], -1)
            channel_scales = np.maximum(np.abs(rows).max(axis=1), 1e-12) / E4M3_MAX
            quantized = array / channel_scales.reshape((-1,) + (1,) * (array.ndim - 1))
            initializers += [float8_tensor(f"{w}_float8", quantized),
                             numpy_helper.from_array(channel_scales.astype(np.float32), f"{w}_scale")]
            nodes.append(helper.make_node("DequantizeLinear", [f"{w}_float8", f"{w}_scale"], [f"{w}_dequantized"],
                                          name=f"{node.name}_weight_dq", axis=0))
            rewritten = onnx.NodeProto()
            rewritten.CopyFrom(node)
            rewritten.input[0] = f"{x}_dequantized"
            rewritten.input[1] = f"{w}_dequantized"
            nodes.append(rewritten)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, 19)
    onnx.checker.check_model(model)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.onnx")
    onnx.save(model, path)
    test = np.load(os.path.join(args.source, "test.npz"))
    x = test["input__input"]
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    logits = ort.InferenceSession(path, plain, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.savez(os.path.join(args.out, "reference.npz"), input__input=x, output__logits=logits, labels=test["labels"])
    float_logits = ort.InferenceSession(os.path.join(args.source, "model.onnx"),
                                        providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    labels = test["labels"]
    print(f"onnxruntime {ort.__version__}: top-1 {np.mean(logits.argmax(1) == labels):.4f} in FP8 E4M3, "
          f"{np.mean(float_logits.argmax(1) == labels):.4f} in float32")


if __name__ == "__main__":
    main()
