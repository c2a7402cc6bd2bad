"""Writes an ONNX model with BERT-base's encoder layers and shapes (12 layers, hidden 768, 12 heads, FFN 3072,
erf GELU, LayerNormalization, an additive attention mask) and seeded random weights, for CPU benchmarks on
machines without PyTorch. Input: float32 embeddings [batch, seq, 768] and a float32 mask [batch, 1, 1, seq] of
0 / -10000 (the embedding lookup is left out: it is a gather, not where the time goes). Its outputs mean
nothing; its cost is BERT-base's encoder.

    usage: python bert_shaped.py OUT.onnx [--batch N] [--seq S] [--layers L]
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN, HEADS, FFN = 768, 12, 3072


def build(batch, seq, layers):
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], **attrs))
        return name

    def linear(x, name, cin, cout):
        w = const(name + ".w", rng.normal(0, 0.02, (cin, cout)).astype(np.float32))
        b = const(name + ".b", rng.normal(0, 0.02, cout).astype(np.float32))
        return node("Add", [node("MatMul", [x, w], name + ".mm"), b], name)

    def layer_norm(x, name):
        g = const(name + ".g", (1 + rng.normal(0, 0.02, HIDDEN)).astype(np.float32))
        b = const(name + ".b", rng.normal(0, 0.02, HIDDEN).astype(np.float32))
        return node("LayerNormalization", [x, g, b], name, axis=-1, epsilon=1e-12)

    heads_shape = const("heads_shape", np.array([batch, seq, HEADS, HIDDEN // HEADS], np.int64))
    merged_shape = const("merged_shape", np.array([batch, seq, HIDDEN], np.int64))
    scale = const("scale", np.array(1 / np.sqrt(HIDDEN // HEADS), np.float32))
    half = const("half", np.array(0.5, np.float32))
    one = const("one", np.array(1.0, np.float32))
    root2 = const("root2", np.array(np.sqrt(2.0), np.float32))
    x = "embeddings"
    for i in range(layers):
        p = f"l{i}"

        def heads(t, perm):
            return node("Transpose", [node("Reshape", [t, heads_shape], t + ".r")], t + ".t", perm=perm)

        q = heads(linear(x, p + ".q", HIDDEN, HIDDEN), [0, 2, 1, 3])
        k = heads(linear(x, p + ".k", HIDDEN, HIDDEN), [0, 2, 3, 1])
        v = heads(linear(x, p + ".v", HIDDEN, HIDDEN), [0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], p + ".qk"), scale], p + ".s"), "mask"], p + ".m")
        probs = node("Softmax", [scores], p + ".p", axis=-1)
        context = node("MatMul", [probs, v], p + ".c")
        merged = node("Reshape", [node("Transpose", [context], p + ".ct", perm=[0, 2, 1, 3]), merged_shape], p + ".cm")
        attn = layer_norm(node("Add", [linear(merged, p + ".o", HIDDEN, HIDDEN), x], p + ".res1"), p + ".ln1")
        h = linear(attn, p + ".ffn1", HIDDEN, FFN)
        erf = node("Erf", [node("Div", [h, root2], p + ".hd")], p + ".erf")
        gelu = node("Mul", [node("Mul", [h, half], p + ".hh"), node("Add", [erf, one], p + ".e1")], p + ".gelu")
        out = linear(gelu, p + ".ffn2", FFN, HIDDEN)
        x = layer_norm(node("Add", [out, attn], p + ".res2"), p + ".ln2")
    nodes.append(helper.make_node("Identity", [x], ["output"]))
    graph = helper.make_graph(
        nodes, "bert_shaped",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [batch, seq, HIDDEN]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, 1, 1, seq])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, seq, HIDDEN])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime 1.31 reads
    onnx.checker.check_model(model)
    return model


def option(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


if __name__ == "__main__":
    onnx.save(build(option("--batch", 1), option("--seq", 128), option("--layers", 12)), sys.argv[1])
