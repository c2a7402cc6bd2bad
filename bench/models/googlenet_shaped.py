"""Writes an ONNX model with GoogLeNet's layers and shapes (Inception v1 as torchvision builds it: 3x3 where the
paper's third branch has 5x5, batch-norms already folded into the convolutions, 224x224 input) and seeded random
weights, for CPU benchmarks on machines without PyTorch. Its outputs mean nothing; its cost is GoogLeNet's.

    usage: python googlenet_shaped.py OUT.onnx [--batch N]   (default: a symbolic batch)
"""
import numpy as np
from onnx import helper, numpy_helper

import shaped

# Inception blocks: (1x1, 3x3 reduce, 3x3, second-branch reduce, its 3x3, pool projection), then whether a
# 3x3 stride-2 max pool follows, from the GoogLeNet paper's Table 1.
BLOCKS = [
    ((64, 96, 128, 16, 32, 32), False), ((128, 128, 192, 32, 96, 64), True),
    ((192, 96, 208, 16, 48, 64), False), ((160, 112, 224, 24, 64, 64), False),
    ((128, 128, 256, 24, 64, 64), False), ((112, 144, 288, 32, 64, 64), False),
    ((256, 160, 320, 32, 128, 128), True), ((256, 160, 320, 32, 128, 128), False),
    ((384, 192, 384, 48, 128, 128), False),
]


def build(batch):
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    count = [0]

    def conv(x, cin, cout, k, s=1):
        count[0] += 1
        name = f"conv{count[0]}"
        w = rng.normal(0, (2 / (cin * k * k)) ** 0.5, (cout, cin, k, k)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, name + ".w"))
        inits.append(numpy_helper.from_array(rng.normal(0, 0.01, cout).astype(np.float32), name + ".b"))
        nodes.append(helper.make_node(
            "Conv", [x, name + ".w", name + ".b"], [name], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4))
        nodes.append(helper.make_node("Relu", [name], [name + ".relu"]))
        return name + ".relu"

    def pool(x, k, s, name):
        nodes.append(helper.make_node(
            "MaxPool", [x], [name], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, ceil_mode=1))
        return name

    x = pool(conv("input", 3, 64, 7, 2), 3, 2, "pool1")
    x = pool(conv(conv(x, 64, 64, 1), 64, 192, 3), 3, 2, "pool2")
    cin = 192
    for index, ((c1, r3, c3, r5, c5, cp), pooled) in enumerate(BLOCKS):
        branches = [
            conv(x, cin, c1, 1), conv(conv(x, cin, r3, 1), r3, c3, 3), conv(conv(x, cin, r5, 1), r5, c5, 3),
            conv(pool(x, 3, 1, f"block{index}.pool"), cin, cp, 1),
        ]
        nodes.append(helper.make_node("Concat", branches, [f"block{index}"], axis=1))
        x, cin = f"block{index}", c1 + c3 + c5 + cp
        if pooled:
            x = pool(x, 3, 2, f"block{index}.down")
    shaped.classifier(nodes, inits, rng, x, cin)
    return shaped.model(nodes, inits, "googlenet_shaped", batch)


if __name__ == "__main__":
    shaped.main(build)
