import KilnIR
import Testing

/// Shape computations as exporters write them for dynamic axes: type inference follows their values, symbolic
/// dims included, so a reshape or expand with a computed shape still gets its output shape.
@Suite struct ShapeValueTests {
    static func int64(_ values: [Int64]) -> Tensor { Tensor(shape: [values.count], scalars: values) }

    /// ids [batch, 128] -> Shape[0:1] -> Concat(, [128]) -> Expand of a scalar; x [batch, 128, 768] -> Shape ->
    /// Slice [0:2] -> Concat(, [12, -1]) -> Reshape; and x's last dim (Gather -1, Unsqueeze) between the batch and
    /// a -1 to reshape x once more.
    static func graph() -> Graph {
        var g = Graph(
            name: "shapes",
            inputs: [
                GraphValue(name: "ids", type: .tensor(TensorType(.int64, [.symbol("batch"), 128]))),
                GraphValue(name: "x", type: .tensor(TensorType(.float32, [.symbol("batch"), 128, 768]))),
            ],
            outputs: [
                GraphValue(name: "expanded", type: nil), GraphValue(name: "heads", type: nil),
                GraphValue(name: "flat", type: nil),
            ],
            initializers: [
                "c128": int64([128]), "zero": Tensor(scalar: Int64(0)), "heads_shape": int64([12, -1]),
                "minus_one": Tensor(scalar: Int64(-1)), "rest": int64([-1]),
            ],
            nodes: [
                Node(name: "s0", layer: ShapeOfLayer(start: 0, end: 1), inputs: ["ids"], outputs: ["s0"]),
                Node(name: "shape2", layer: ConcatLayer(axis: 0), inputs: ["s0", "c128"], outputs: ["shape2"]),
                Node(
                    name: "expand", layer: ExpandLayer(shape: nil), inputs: ["zero", "shape2"], outputs: ["expanded"]),
                Node(name: "sx", layer: ShapeOfLayer(), inputs: ["x"], outputs: ["sx"]),
                Node(
                    name: "first2", layer: SliceLayer(starts: [0], ends: [2], axes: nil, steps: nil, isStatic: true),
                    inputs: ["sx"], outputs: ["first2"]),
                Node(name: "spec", layer: ConcatLayer(axis: 0), inputs: ["first2", "heads_shape"], outputs: ["spec"]),
                Node(
                    name: "reshape", layer: ReshapeLayer(.reshape(shape: nil, allowZero: false)),
                    inputs: ["x", "spec"], outputs: ["heads"]),
                Node(name: "last", layer: GatherLayer(axis: 0), inputs: ["sx", "minus_one"], outputs: ["last"]),
                Node(
                    name: "unsqueeze", layer: ReshapeLayer(.unsqueeze(axes: [0])), inputs: ["last"],
                    outputs: ["last1"]),
                Node(
                    name: "flat_spec", layer: ConcatLayer(axis: 0), inputs: ["s0", "last1", "rest"],
                    outputs: ["flat_spec"]),
                Node(
                    name: "flat", layer: ReshapeLayer(.reshape(shape: nil, allowZero: false)),
                    inputs: ["x", "flat_spec"], outputs: ["flat"]),
            ])
        try? g.inferTypes()
        return g
    }

    @Test func computedShapesGiveSymbolicOutputShapes() throws {
        let g = Self.graph()
        func shape(_ value: String) -> [Dim]? { g.type(of: value)?.tensorType?.shape }
        #expect(shape("expanded") == [.symbol("batch"), 128])
        // [batch, 128, 768] as [batch, 128, 12, -1]: the -1 is 768 / 12 with the symbol cancelled.
        #expect(shape("heads") == [.symbol("batch"), 128, 12, 64])
        // [batch, 768, -1] from the batch, the gathered last dim and -1: the -1 is 128.
        #expect(shape("flat") == [.symbol("batch"), 768, 128])
    }

    @Test func aShapeOfUnknownRankGivesNothing() throws {
        var g = Self.graph()
        g.inputs[1].type = .tensor(TensorType(.float32, nil))
        g.valueTypes = [:]
        try g.inferTypes()
        #expect(g.type(of: "heads")?.tensorType?.shape == nil)
        #expect(g.type(of: "expanded")?.tensorType?.shape == [.symbol("batch"), 128])
    }
}
