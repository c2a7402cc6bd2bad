"""Writes an ONNX model with MobileNetV2's layers and shapes (width 1.0, 224x224 input, batch-norms already
folded into the convolutions, ReLU6 as Clip) and seeded random weights, for CPU benchmarks on machines without
PyTorch. Its outputs mean nothing; its cost is MobileNetV2's.

    usage: python mobilenet_v2_shaped.py OUT.onnx [--batch N]   (default: a symbolic batch)
"""
import numpy as np
from onnx import helper, numpy_helper

import shaped

# (expansion t, output channels c, repeats n, first stride s), from the MobileNetV2 paper's Table 2.
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def build(batch):
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    six = numpy_helper.from_array(np.array(6, dtype=np.float32), "six")
    zero = numpy_helper.from_array(np.array(0, dtype=np.float32), "zero")
    inits += [six, zero]
    count = [0]

    def conv(x, cin, cout, k, s, group=1, relu6=True):
        count[0] += 1
        name = f"conv{count[0]}"
        fan_in = cin // group * k * k
        w = rng.normal(0, (2 / fan_in) ** 0.5, (cout, cin // group, k, k)).astype(np.float32)
        b = rng.normal(0, 0.01, cout).astype(np.float32)
        inits.append(numpy_helper.from_array(w, name + ".w"))
        inits.append(numpy_helper.from_array(b, name + ".b"))
        nodes.append(helper.make_node(
            "Conv", [x, name + ".w", name + ".b"], [name], kernel_shape=[k, k], strides=[s, s],
            pads=[k // 2] * 4, group=group))
        if not relu6:
            return name
        nodes.append(helper.make_node("Clip", [name, "zero", "six"], [name + ".relu6"]))
        return name + ".relu6"

    x = conv("input", 3, 32, 3, 2)
    cin = 32
    for t, c, n, s in BLOCKS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = conv(x, cin, hidden, 1, 1) if t != 1 else x
            y = conv(y, hidden, hidden, 3, stride, group=hidden)
            y = conv(y, hidden, c, 1, 1, relu6=False)
            if stride == 1 and cin == c:
                nodes.append(helper.make_node("Add", [x, y], [y + ".add"]))
                y = y + ".add"
            x, cin = y, c
    x = conv(x, cin, 1280, 1, 1)
    shaped.classifier(nodes, inits, rng, x, 1280)
    return shaped.model(nodes, inits, "mobilenet_v2_shaped", batch)


if __name__ == "__main__":
    shaped.main(build)
