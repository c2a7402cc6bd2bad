"""What the scripts writing shaped ImageNet models (seeded random weights, no PyTorch) share: the classifier head,
the checked ONNX model around the layers, and the command line `OUT.onnx [--batch N]`."""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def classifier(nodes, inits, rng, x, channels):
    """Global average pooling, flatten and a 1000-class Gemm after `x` (`channels` wide); the result is "output"."""
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
    inits.append(numpy_helper.from_array(rng.normal(0, 0.01, (1000, channels)).astype(np.float32), "fc.w"))
    inits.append(numpy_helper.from_array(np.zeros(1000, np.float32), "fc.b"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["output"], transB=1))


def model(nodes, inits, name, batch):
    """The checked model of `nodes` from "input" [batch, 3, 224, 224] to "output" [batch, 1000] (a symbolic
    batch when `batch` is None)."""
    dim = batch if batch else "batch"
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [dim, 3, 224, 224])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [dim, 1000])], inits)
    result = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result.ir_version = 8  # what ONNX Runtime 1.31 reads
    onnx.checker.check_model(result)
    return result


def main(build):
    """Saves `build(batch)` to the path the command line names."""
    batch = int(sys.argv[sys.argv.index("--batch") + 1]) if "--batch" in sys.argv else None
    onnx.save(build(batch), sys.argv[1])
