/// The name of a layer kind: the engine's vocabulary (`convolution`, `pointwise.binary`, `reduce`, ...).
/// Backends implement layer kinds, never ONNX operators. Each kind is declared next to its parameters.
public struct LayerKind: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { name }
    public static func < (a: LayerKind, b: LayerKind) -> Bool { a.name < b.name }
}

/// What a layer knows about one input during type inference.
public struct LayerInput: Sendable {
    /// nil when the input is absent (an omitted optional input) or its type is not known.
    public var type: ValueType?
    /// The input's value when it is a constant (an initializer or folded value).
    public var constant: Tensor?
    /// false for an omitted optional input.
    public var isPresent: Bool
    /// The values of a small integer tensor computed from shapes (`ShapeValues`), symbolic dims included, when
    /// type inference knows them; constants' values too.
    public var shapeValue: [Dim]?

    public init(type: ValueType?, constant: Tensor? = nil, isPresent: Bool = true, shapeValue: [Dim]? = nil) {
        self.type = type
        self.constant = constant
        self.isPresent = isPresent
        self.shapeValue = shapeValue
    }

    public var tensorType: TensorType? { type?.tensorType }
    public static let absent = LayerInput(type: nil, isPresent: false)
}

/// A layer: its kind plus typed parameters, parsed once at import. Layers are plain values.
public protocol Layer: Sendable, CustomStringConvertible, Codable {
    static var kind: LayerKind { get }
    /// The output types given the inputs. Return nil for an output whose type cannot be known statically
    /// (data-dependent shape); throw when the inputs are invalid for this layer.
    func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?]
    /// Graphs the layer owns (control flow bodies), in a fixed order.
    var subgraphs: [Graph] { get }
    /// The same layer with its subgraphs replaced (same count and order), for passes that rewrite bodies.
    func replacingSubgraphs(_ graphs: [Graph]) -> Self
    /// false for layers whose result is not a pure function of the inputs (random generators): the
    /// optimizer never folds those.
    var isDeterministic: Bool { get }
}

extension Layer {
    public var kind: LayerKind { Self.kind }
    public var subgraphs: [Graph] { [] }
    public func replacingSubgraphs(_ graphs: [Graph]) -> Self { self }
    public var isDeterministic: Bool { true }
    /// The parameters in the text form; layers without parameters print nothing.
    public var description: String { "" }
}
