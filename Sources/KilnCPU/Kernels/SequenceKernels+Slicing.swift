import KilnIR

/// Byte-level slicing, concatenation and stacking of tensors of any dtype (strings included), shared by the
/// sequence and control-flow kernels. The copies are contiguous runs, so they work without knowing the type.
enum TensorSlicing {
    /// Normalizes a possibly negative axis for `rank`, or throws.
    static func axis(_ axis: Int, rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else {
            throw KilnError.invalidArgument("axis \(axis) is out of range for rank \(rank)")
        }
        return a
    }

    /// Elements `start..<start+length` of `tensor` along `axis`; with `dropAxis` (length 1) the axis goes.
    static func slice(_ tensor: Tensor, axis: Int, start: Int, length: Int, dropAxis: Bool = false) throws -> Tensor {
        let a = try self.axis(axis, rank: tensor.rank)
        guard start >= 0, length >= 0, start + length <= tensor.shape[a] else {
            throw KilnError.invalidArgument(
                "slice \(start)..<\(start + length) is outside axis \(a) of \(tensor.shape)")
        }
        let outer = tensor.shape[..<a].reduce(1, *)
        let inner = tensor.shape[(a + 1)...].reduce(1, *)
        var shape = tensor.shape
        shape[a] = length
        if dropAxis {
            guard length == 1 else { throw KilnError.invalidArgument("cannot drop an axis of length \(length)") }
            shape.remove(at: a)
        }
        let rowIn = tensor.shape[a] * inner
        let rowOut = length * inner
        if tensor.dtype == .string {
            let source = tensor.strings
            var out: [String] = []
            out.reserveCapacity(outer * rowOut)
            for o in 0..<outer {
                out.append(contentsOf: source[(o * rowIn + start * inner)..<(o * rowIn + (start + length) * inner)])
            }
            return Tensor(shape: shape, strings: out)
        }
        let result = Tensor(zeros: tensor.dtype, shape: shape)
        let size = tensor.dtype.byteSize
        let source = tensor.storage.bytes
        let target = result.storage.bytes
        for o in 0..<outer where rowOut > 0 {
            (target + o * rowOut * size).copyMemory(
                from: source + (o * rowIn + start * inner) * size, byteCount: rowOut * size)
        }
        return result
    }

    /// Concatenates tensors of one dtype along `axis`; every other dimension must agree.
    static func concat(_ tensors: [Tensor], axis: Int) throws -> Tensor {
        guard let first = tensors.first else { throw KilnError.invalidArgument("nothing to concatenate") }
        let a = try self.axis(axis, rank: first.rank)
        var shape = first.shape
        shape[a] = 0
        for t in tensors {
            guard t.dtype == first.dtype else {
                throw KilnError.typeMismatch("cannot concatenate \(t.dtype) with \(first.dtype)")
            }
            guard t.rank == first.rank,
                t.shape.enumerated().allSatisfy({ $0.offset == a || $0.element == first.shape[$0.offset] })
            else {
                throw KilnError.shapeMismatch("cannot concatenate \(t.shape) with \(first.shape) along axis \(a)")
            }
            shape[a] += t.shape[a]
        }
        let outer = first.shape[..<a].reduce(1, *)
        let inner = first.shape[(a + 1)...].reduce(1, *)
        let rowOut = shape[a] * inner
        if first.dtype == .string {
            var out = [String](repeating: "", count: outer * rowOut)
            var offset = 0
            for t in tensors {
                let s = t.strings
                let row = t.shape[a] * inner
                for o in 0..<outer {
                    for j in 0..<row { out[o * rowOut + offset + j] = s[o * row + j] }
                }
                offset += row
            }
            return Tensor(shape: shape, strings: out)
        }
        let result = Tensor(zeros: first.dtype, shape: shape)
        let size = first.dtype.byteSize
        var offset = 0
        for t in tensors {
            let row = t.shape[a] * inner
            for o in 0..<outer where row > 0 {
                (result.storage.bytes + (o * rowOut + offset) * size)
                    .copyMemory(from: t.storage.bytes + o * row * size, byteCount: row * size)
            }
            offset += row
        }
        return result
    }

    /// Stacks tensors of one shape along a new axis `axis` (in the result's rank).
    static func stack(_ tensors: [Tensor], axis: Int) throws -> Tensor {
        guard let first = tensors.first else { throw KilnError.invalidArgument("nothing to stack") }
        let a = try self.axis(axis, rank: first.rank + 1)
        let expanded = try tensors.map { t -> Tensor in
            var shape = t.shape
            shape.insert(1, at: a)
            return try t.reshaped(shape)
        }
        return try concat(expanded, axis: a)
    }

    /// The elements of `tensor` reversed along `axis`.
    static func reversed(_ tensor: Tensor, axis: Int) throws -> Tensor {
        let a = try self.axis(axis, rank: tensor.rank)
        let pieces = try (0..<tensor.shape[a]).reversed().map { try slice(tensor, axis: a, start: $0, length: 1) }
        return pieces.isEmpty ? tensor : try concat(pieces, axis: a)
    }

    /// An integer scalar input (position, count), checked to be one element.
    static func scalarInt(_ tensor: Tensor, _ what: String) throws -> Int {
        guard tensor.count == 1 else {
            throw KilnError.invalidArgument("\(what) must have one element, has shape \(tensor.shape)")
        }
        return try tensor.scalarInt()
    }

    /// A boolean condition input.
    static func condition(_ tensor: Tensor) throws -> Bool {
        guard tensor.count == 1 else {
            throw KilnError.invalidArgument("condition must have one element, has shape \(tensor.shape)")
        }
        return try tensor.doubleValues()[0] != 0
    }
}
