import KilnIR

/// Where a layer may write its output 0 instead of bytes of its own: `rows` rows of `rowElements` contiguous
/// elements, `rowStride` elements apart. A concat whose inputs are not contiguous blocks of its output (a
/// channels-last concat on the channels, a channels-first one at batch > 1) offers each producer the columns its
/// input takes in every row (`CUDAConcatSlots`); a producer that writes there leaves the concat nothing to copy.
public struct CUDAOutputSlot: Sendable, Hashable {
    public var rows: Int
    public var rowElements: Int
    public var rowStride: Int

    public init(rows: Int, rowElements: Int, rowStride: Int) {
        self.rows = rows
        self.rowElements = rowElements
        self.rowStride = rowStride
    }

    /// The element strides of a tensor of stored `shape` written into the slot: the trailing axes that make up
    /// one row keep their dense strides, each axis before them steps whole rows of the slot. Nil when the
    /// trailing axes do not make up exactly one row or the shape does not hold `rows` of them.
    public func strides(of shape: [Int]) -> [Int]? {
        guard rowElements > 0, rowStride >= rowElements, shape.reduce(1, *) == rows * rowElements else { return nil }
        // The row: the fewest trailing axes whose sizes multiply to `rowElements`.
        var split = shape.count
        var inner = 1
        while split > 0 && inner < rowElements {
            split -= 1
            inner *= shape[split]
        }
        guard inner == rowElements else { return nil }
        let dense = Broadcast.strides(shape)
        return shape.indices.map { $0 >= split ? dense[$0] : dense[$0] / rowElements * rowStride }
    }
}
