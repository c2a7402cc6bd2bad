/// The window geometry shared by max, average and Lp pooling (and usable by convolution-like layers):
/// kernel, strides, dilations and padding over the spatial axes (everything after N and C).
public struct PoolGeometry: Sendable, Equatable, CustomStringConvertible, Codable {
    public enum AutoPad: String, Sendable, Codable {
        case explicit, sameUpper, sameLower, valid
    }

    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    /// Begin pads for every spatial axis, then end pads (the ONNX order). Ignored unless `autoPad` is explicit.
    public var pads: [Int]
    public var autoPad: AutoPad
    public var ceilMode: Bool

    public init(
        kernel: [Int], strides: [Int]? = nil, dilations: [Int]? = nil, pads: [Int]? = nil,
        autoPad: AutoPad = .explicit, ceilMode: Bool = false
    ) {
        self.kernel = kernel
        self.strides = strides ?? Array(repeating: 1, count: kernel.count)
        self.dilations = dilations ?? Array(repeating: 1, count: kernel.count)
        self.pads = pads ?? Array(repeating: 0, count: kernel.count * 2)
        self.autoPad = autoPad
        self.ceilMode = ceilMode
    }

    /// The window placement for concrete spatial sizes.
    public struct Resolved: Sendable, Equatable, Codable {
        public var output: [Int]
        public var padBegin: [Int]
        /// The padded extent that counts toward averages with `count_include_pad` (input plus both pads).
        public var paddedEnd: [Int]
    }

    /// Checks the attribute lengths and values against the number of spatial axes.
    public func validate(spatialRank: Int) throws {
        guard kernel.count == spatialRank, strides.count == spatialRank, dilations.count == spatialRank,
            pads.count == 2 * spatialRank
        else {
            throw KilnError.invalidArgument(
                "pool window \(self) does not fit \(spatialRank) spatial axes")
        }
        guard kernel.allSatisfy({ $0 > 0 }), strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }),
            pads.allSatisfy({ $0 >= 0 })
        else {
            throw KilnError.invalidArgument("pool window \(self) has a non-positive size, stride or dilation")
        }
        // Bounded so that window arithmetic (kernel * dilation, output * stride) cannot overflow.
        let limit = Int(Int32.max)
        guard (kernel + strides + dilations + pads).allSatisfy({ $0 <= limit }) else {
            throw KilnError.invalidArgument("pool window \(self) has a size beyond \(limit)")
        }
    }

    /// Output sizes and begin pads for input spatial sizes `input`.
    public func resolve(_ input: [Int]) throws -> Resolved {
        try validate(spatialRank: input.count)
        var out: [Int] = []
        var begin: [Int] = []
        var end: [Int] = []
        for i in input.indices {
            let n = input[i]
            let k = (kernel[i] - 1) * dilations[i] + 1
            let s = strides[i]
            switch autoPad {
            case .explicit:
                let pb = pads[i]
                let pe = pads[i + input.count]
                let span = n + pb + pe - k
                guard span >= 0 else {
                    throw KilnError.invalidArgument("pool window \(k) is larger than padded input \(n + pb + pe)")
                }
                var o = (ceilMode ? (span + s - 1) / s : span / s) + 1
                // A last window that would start inside the end padding is dropped (PyTorch and ONNX agree).
                if ceilMode && (o - 1) * s >= n + pb { o -= 1 }
                out.append(o)
                begin.append(pb)
                end.append(n + pb + pe)
            case .valid:
                guard n >= k else { throw KilnError.invalidArgument("pool window \(k) is larger than input \(n)") }
                out.append((n - k) / s + 1)
                begin.append(0)
                end.append(n)
            case .sameUpper, .sameLower:
                let o = (n + s - 1) / s
                let total = max(0, (o - 1) * s + k - n)
                let pb = autoPad == .sameUpper ? total / 2 : total - total / 2
                out.append(o)
                begin.append(pb)
                end.append(n + total)
            }
        }
        return Resolved(output: out, padBegin: begin, paddedEnd: end)
    }

    public var description: String {
        var parts = ["kernel=\(kernel)"]
        if strides.contains(where: { $0 != 1 }) { parts.append("strides=\(strides)") }
        if dilations.contains(where: { $0 != 1 }) { parts.append("dilations=\(dilations)") }
        if autoPad == .explicit {
            if pads.contains(where: { $0 != 0 }) { parts.append("pads=\(pads)") }
        } else {
            parts.append("auto_pad=\(autoPad.rawValue)")
        }
        if ceilMode { parts.append("ceil=1") }
        return parts.joined(separator: " ")
    }
}
