import KilnIR

/// What passes may use besides the graph. The optimizer never imports a backend: evaluating a node (for
/// constant folding) is a closure the builder supplies.
public struct PassContext: Sendable {
    /// Computes a node's outputs from constant inputs.
    public var evaluate: @Sendable (Node, [Value?]) throws -> [Value]
    /// Constants larger than this (bytes) are left unfolded so models do not grow.
    public var foldingLimitBytes: Int
    /// Hears each fusion a pass considered and did not make: the node it would have extended and why
    /// (`kiln inspect --verbose`). A later round may still make it.
    public var rejected: (@Sendable (_ node: String, _ reason: String) -> Void)?

    public init(
        evaluate: @escaping @Sendable (Node, [Value?]) throws -> [Value],
        foldingLimitBytes: Int = 64 << 20,
        rejected: (@Sendable (_ node: String, _ reason: String) -> Void)? = nil
    ) {
        self.evaluate = evaluate
        self.foldingLimitBytes = foldingLimitBytes
        self.rejected = rejected
    }
}

/// One graph rewrite. Returns true when it changed the graph.
public protocol Pass: Sendable {
    var name: String { get }
    func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool
}

/// An ordered list of passes, repeated until none changes the graph (bounded).
public struct Pipeline: Sendable {
    public var passes: [any Pass]
    public var maxRounds: Int

    public init(_ passes: [any Pass], maxRounds: Int = 4) {
        self.passes = passes
        self.maxRounds = maxRounds
    }

    /// The standard pipeline, in the order it runs.
    public static let standard = Pipeline([
        IdentityElimination(),
        ShapeFolding(),
        ConstantFolding(),
        // Patterns read constants, so they come after folding.
        GeluRecognition(),
        NormalizationRecognition(),
        // After it: a group norm's middle is a layer norm once recognized.
        GroupNormRecognition(),
        SoftmaxRecognition(),
        // Pads are constants after folding; before the epilogues, so the convolution that absorbs a Pad also
        // absorbs what follows it.
        PadFolding(),
        // Folding first makes batch-norm parameters and biases constants; BatchNorm before epilogues so the
        // activation after a normalization meets the convolution.
        BatchNormFolding(),
        ScaleFolding(),
        TransposeFolding(),
        SoftmaxNaNGuardFolding(),
        EpilogueFusion(),
        // After the epilogues, so an int8 layer keeps the activation fused into its float epilogue.
        QDQFolding(),
        // After the epilogues (biases are inside the products; a mask add may be the scores' C input).
        HorizontalFusion(),
        // After the epilogues, so a product's bias add no longer hides that only shuffles read it.
        RowShuffleMotion(),
        AttentionFusion(),
        // After batch-norm folding and the epilogues; its multiply and add join the chains fused next.
        BatchNormAffine(),
        // After the epilogues, so what a convolution or matMul absorbs is not fused here instead.
        PointwiseFusion(),
        // After the patterns that look through reshapes (transpose folding, attention) have seen them.
        ReshapeFolding(),
        DeadCodeElimination(),
    ])

    /// Passes the builder runs after the pipeline and the precision passes when the device asks for them
    /// (`Int8Chaining` in int8 builds, `ChannelsLastLayout`, `WeightRows`, `TransposedInput`,
    /// `DequantizedPooling`), and the CUDA
    /// memory layout's storing of concat inputs inside the concat's output (`concat-in-place`) and of pointwise
    /// outputs over their inputs (`pointwise-in-place`); they are switched off by name like the pipeline's own.
    public static let devicePassNames = [
        Int8Chaining.name, ChannelsLastLayout.name, WeightRows.name, TransposedInput.name, DequantizedPooling.name,
        concatInPlace, pointwiseInPlace,
    ]

    /// What `--no-fuse` calls the CUDA memory layout's storing of concat inputs inside the concat's output.
    public static let concatInPlace = "concat-in-place"
    /// What `--no-fuse` calls the CUDA memory layout's writing of a pointwise layer's output over an input
    /// nothing reads afterwards.
    public static let pointwiseInPlace = "pointwise-in-place"

    /// The names of the standard pipeline's passes, in order, then the device passes (what `--passes` and
    /// `--no-fuse` accept).
    public static var standardPassNames: [String] { standard.passes.map(\.name) + devicePassNames }

    /// This pipeline without the passes named in `names`, to bisect a numerical problem or measure a pass.
    /// An unknown name is an error that lists the known ones.
    public func disabling(_ names: Set<String>) throws -> Pipeline {
        let known = passes.map(\.name) + Self.devicePassNames
        if let unknown = names.subtracting(known).sorted().first {
            throw KilnError.invalidArgument(
                "no optimizer pass '\(unknown)'; the passes are \(known.joined(separator: ", "))")
        }
        return Pipeline(passes.filter { !names.contains($0.name) }, maxRounds: maxRounds)
    }

    public func run(_ graph: inout Graph, _ context: PassContext) throws {
        for _ in 0..<maxRounds {
            var changed = false
            for pass in passes {
                changed = try withErrorContext("pass \(pass.name)") { try pass.run(&graph, context) } || changed
            }
            if !changed { return }
        }
    }
}
