import KilnIR

/// Defines a network in Swift, layer by layer, as an alternative to importing ONNX: add inputs and constants,
/// add layers that read earlier values, mark outputs, then `build()` the graph for `Builder`.
///
/// ```swift
/// var network = NetworkBuilder(name: "mlp")
/// let x = network.addInput("x", .float32, [.symbol("batch"), 4])
/// let w = network.addConstant("w", Tensor(shape: [4, 3], scalars: weights))
/// let y = try network.matMul(x, w)
/// try network.markOutput(try network.relu(y), as: "y")
/// let engine = try Builder.build(try network.build(), device: CPUDevice())
/// ```
public struct NetworkBuilder {
    /// A value of the network under construction: a graph input, a constant, or a layer's output.
    public struct Value: Sendable, Hashable {
        public let name: String
    }

    private var graph: Graph
    private var names: Set<String> = []
    private var counter = 0

    public init(name: String = "network") { graph = Graph(name: name) }

    /// A graph input. Dimensions may be symbolic (`.symbol("batch")`): one engine serves every size.
    public mutating func addInput(_ name: String, _ dtype: DType, _ shape: [Dim]) -> Value {
        let value = claim(name)
        graph.inputs.append(GraphValue(name: value.name, type: .tensor(TensorType(dtype, shape))))
        return value
    }

    /// A constant tensor (weights, biases, shapes).
    public mutating func addConstant(_ name: String, _ tensor: Tensor) -> Value {
        let value = claim(name)
        graph.initializers[value.name] = tensor
        return value
    }

    /// Adds `layer` reading `inputs` (nil for an omitted optional input) and returns its `outputs` values.
    /// Throws when an input is not a value of this network, or when the layer rejects its inputs' types.
    @discardableResult
    public mutating func add(
        _ layer: any Layer, _ inputs: [Value?], outputs: Int = 1, name: String? = nil
    ) throws -> [Value] {
        for input in inputs.compactMap({ $0 }) where !names.contains(input.name) {
            throw KilnError.invalidArgument("'\(input.name)' is not a value of network '\(graph.name)'")
        }
        let nodeName = name ?? "\(layer.kind.name)_\(graph.nodes.count)"
        let results = (0..<outputs).map { index in claim(outputs == 1 ? nodeName : "\(nodeName).\(index)") }
        graph.nodes.append(
            Node(name: nodeName, layer: layer, inputs: inputs.map { $0?.name ?? "" }, outputs: results.map(\.name)))
        do {
            try graph.inferTypes()
        } catch {
            graph.nodes.removeLast()
            throw error
        }
        return results
    }

    /// Marks `value` as a network output, named `name` when given (a name no other value has).
    public mutating func markOutput(_ value: Value, as name: String? = nil) throws {
        guard names.contains(value.name) else {
            throw KilnError.invalidArgument("'\(value.name)' is not a value of network '\(graph.name)'")
        }
        guard let name, name != value.name else {
            graph.outputs.append(GraphValue(name: value.name, type: nil))
            return
        }
        guard !names.contains(name) else {
            throw KilnError.invalidArgument("network '\(graph.name)' already has a value named '\(name)'")
        }
        let renamed = claim(name)
        graph.nodes.append(Node(name: name, layer: IdentityLayer(), inputs: [value.name], outputs: [renamed.name]))
        graph.outputs.append(GraphValue(name: renamed.name, type: nil))
    }

    /// The network as a verified, typed graph.
    public func build() throws -> Graph {
        var built = graph
        guard !built.outputs.isEmpty else {
            throw KilnError.invalidArgument("network '\(graph.name)' has no outputs (markOutput)")
        }
        try built.verify()
        try built.inferTypes()
        for index in built.outputs.indices {
            built.outputs[index].type = built.type(of: built.outputs[index].name)
        }
        return built
    }

    /// The type of a value, as inferred so far.
    public func type(of value: Value) -> ValueType? { graph.type(of: value.name) }

    /// A fresh name: `name`, or `name_1`, `name_2`... when taken.
    private mutating func claim(_ name: String) -> Value {
        var candidate = name
        while names.contains(candidate) {
            counter += 1
            candidate = "\(name)_\(counter)"
        }
        names.insert(candidate)
        return Value(name: candidate)
    }
}

// The common layers by name; any other layer goes through `add`.
extension NetworkBuilder {
    public mutating func convolution(
        _ x: Value, weights: Value, bias: Value? = nil, strides: [Int] = [], pads: [Int] = [], group: Int = 1
    ) throws -> Value {
        try single(
            ConvolutionLayer(ConvolutionParameters(strides: strides, pads: pads, group: group)), [x, weights, bias])
    }

    /// `a × b (+ c)`, with numpy's batching.
    public mutating func matMul(_ a: Value, _ b: Value, bias c: Value? = nil, transposeB: Bool = false) throws -> Value
    {
        try single(MatMulLayer(transposeB: transposeB), c.map { [a, b, $0] } ?? [a, b])
    }

    public mutating func relu(_ x: Value) throws -> Value { try single(UnaryLayer(.relu), [x]) }

    public mutating func add(_ a: Value, _ b: Value) throws -> Value { try single(BinaryLayer(.add), [a, b]) }

    public mutating func softmax(_ x: Value, axis: Int = -1) throws -> Value {
        try single(SoftmaxLayer(variant: .softmax, axis: axis), [x])
    }

    /// The mean of each whole plane of an N x C x H x W tensor.
    public mutating func globalAveragePool(_ x: Value) throws -> Value {
        try single(PoolLayer(op: .average(countIncludePad: false), window: nil), [x])
    }

    /// The maximum of each window of an N x C x spatial tensor (pads: begins, then ends, as ONNX).
    public mutating func maxPool(_ x: Value, kernel: [Int], strides: [Int]? = nil, pads: [Int]? = nil) throws -> Value {
        try single(PoolLayer(op: .max, window: PoolGeometry(kernel: kernel, strides: strides, pads: pads)), [x])
    }

    /// To 2-D: the axes before `axis`, and from `axis` on.
    public mutating func flatten(_ x: Value, axis: Int = 1) throws -> Value {
        try single(ReshapeLayer(.flatten(axis: axis)), [x])
    }

    private mutating func single(_ layer: any Layer, _ inputs: [Value?]) throws -> Value {
        let outputs = try add(layer, inputs)
        guard let output = outputs.first else { throw KilnError.runtime("layer \(layer.kind) made no output") }
        return output
    }
}
