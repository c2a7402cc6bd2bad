#!/usr/bin/env python3
"""Writes models/digits-qdq: the default digits model quantized by ONNX Runtime's own tool
(onnxruntime.quantization.quantize_static, QDQ format, per-channel int8 weights, uint8 activations,
calibrated on the calibration split), with ONNX Runtime's outputs on the test split as the reference.

    python3 scripts/quantize-digits.py [--source models/digits] [--out models/digits-qdq]

The reference runs the Q/DQ graph as written (graph optimizations off): with them on, ONNX Runtime's CPU
provider fuses the pairs into integer kernels whose results differ from the graph's definition by several
percent, while the definition is what Kiln's int8 layers compute. reference.npz holds input__input,
output__logits (definition), output_fused__logits (ONNX Runtime's fused kernels) and labels.
Needs numpy, onnx and onnxruntime.
"""
import argparse
import os

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="models/digits")
    parser.add_argument("--out", default="models/digits-qdq")
    args = parser.parse_args()

    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    calibration = np.load(os.path.join(args.source, "calibration.npz"))["input__input"]

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.start = 0

        def get_next(self):
            if self.start >= len(calibration):
                return None
            batch = calibration[self.start:self.start + 64]
            self.start += 64
            return {"input": batch}

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.onnx")
    quantize_static(os.path.join(args.source, "model.onnx"), path, Batches(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    test = np.load(os.path.join(args.source, "test.npz"))
    x = test["input__input"]
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    definition = ort.InferenceSession(path, plain, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    fused = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.savez(os.path.join(args.out, "reference.npz"), input__input=x, output__logits=definition,
             output_fused__logits=fused, labels=test["labels"])
    labels = test["labels"]
    print(f"onnxruntime {ort.__version__}: top-1 {np.mean(definition.argmax(1) == labels):.4f} (definition), "
          f"{np.mean(fused.argmax(1) == labels):.4f} (fused kernels)")


if __name__ == "__main__":
    main()
