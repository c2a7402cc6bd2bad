import KilnIR

/// Lowerings of gather and gatherElements. Indices are read from device memory (int32 or int64); negative
/// indices count from the end of the axis. An index still out of range after wrapping makes its output
/// element(s) zero: a kernel cannot throw as the CPU kernel does, and faulting would kill the context. So the
/// GPU result differs from the CPU (an error) only for inputs the CPU rejects.
enum CUDAIndexingLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] = [
        cudaLowering(GatherLayer.self) { layer, info in try gather(layer, info) },
        cudaLowering(GatherElementsLayer.self) { layer, info in try gatherElements(layer, info) },
    ]

    static func gather(_ layer: GatherLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let data = try info.inputShape(0)
        let es = try CUDAShapeKernels.requireElementSize(try info.input(0).dtype)
        let indexShape = try info.inputShape(1)
        let indexType = try CUDAShapeKernels.indexTypeName(try info.input(1).dtype)
        let a = try ShapeAxes.normalize(layer.axis, rank: data.count)
        let outer = Tensor.elementCount(Array(data[..<a]))
        let inner = Tensor.elementCount(Array(data[(a + 1)...]))
        let count = Tensor.elementCount(indexShape)
        let innerBytes = inner * es
        let total = outer * count * innerBytes
        guard total > 0 else { return CUDALowering(steps: []) }
        // One constant index with nothing before the axis: the output is a contiguous block of the data.
        if outer == 1, count == 1, let indices = info.constants[1], let raw = try? indices.doubleValues().first {
            let index = Int(raw) < 0 ? Int(raw) + data[a] : Int(raw)
            guard (0..<data[a]).contains(index) else {
                throw KilnError.invalidArgument("gather index \(Int(raw)) is out of range for axis size \(data[a])")
            }
            return CUDALowering(aliases: [0: 0], aliasOffsets: [0: index * innerBytes])
        }
        let unit = CUDAShapeKernels.unit(dividing: [innerBytes])
        let innerUnits = innerBytes / unit
        let source = gatherSource(unit: unit, indexType: indexType)
        return CUDALowering(steps: [
            .launch(
                CUDALaunch(
                    source: source, function: source.name, grid: CUDAShapeKernels.grid(total / unit),
                    block: CUDADim3(CUDAShapeKernels.blockSize),
                    arguments: [
                        .pointer(.output(0)), .pointer(.input(0)), .pointer(.input(1)), .int(outer), .int(count),
                        .int(innerUnits), .int(data[a]),
                    ]))
        ])
    }

    static func gatherElements(_ layer: GatherElementsLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let data = try info.inputShape(0)
        let es = try CUDAShapeKernels.requireElementSize(try info.input(0).dtype)
        let indexShape = try info.inputShape(1)
        let indexType = try CUDAShapeKernels.indexTypeName(try info.input(1).dtype)
        let a = try ShapeAxes.normalize(layer.axis, rank: data.count)
        guard indexShape.count == data.count,
            (0..<data.count).allSatisfy({ $0 == a || indexShape[$0] <= data[$0] })
        else { throw KilnError.shapeMismatch("gatherElements indices \(indexShape) for data \(data)") }
        guard data.count <= CUDAPrelude.maxRank else {
            throw KilnError.unsupported("CUDA gatherElements handles rank <= \(CUDAPrelude.maxRank)")
        }
        let count = Tensor.elementCount(indexShape)
        guard count > 0 else { return CUDALowering(steps: []) }
        // Rank 0 has no axis to gather along; ShapeAxes.normalize already rejected it.
        let source = gatherElementsSource(unit: es, rank: data.count, indexType: indexType)
        return CUDALowering(steps: [
            .launch(
                CUDALaunch(
                    source: source, function: source.name, grid: CUDAShapeKernels.grid(count),
                    block: CUDADim3(CUDAShapeKernels.blockSize),
                    arguments: [
                        .pointer(.output(0)), .pointer(.input(0)), .pointer(.input(1)), .int(count),
                        .dims(indexShape), .dims(Broadcast.strides(data)), .int(a), .int(data[a]),
                    ]))
        ])
    }

    static func indexSuffix(_ indexType: String) -> String { indexType == "int" ? "i32" : "i64" }

    /// `out[(o, k, c)] = data[(o, indices[k], c)]` for o < outer, k < count, c < innerUnits (in units).
    static func gatherSource(unit: Int, indexType: String) -> CUDASource {
        let name = "kiln_gather_u\(unit)_\(indexSuffix(indexType))"
        let code =
            CUDAShapeKernels.unitDeclaration(unit) + """
                extern "C" __global__ void \(name)(
                    T* __restrict__ out, const T* __restrict__ data, const \(indexType)* __restrict__ indices, i64 outer,
                    i64 count, i64 innerUnits, i64 axisLength)
                {
                    const i64 total = outer * count * innerUnits;
                    const i64 step = (i64)gridDim.x * blockDim.x;
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                        const i64 r = i / innerUnits;
                        const i64 c = i - r * innerUnits;
                        const i64 o = r / count;
                        const i64 k = r - o * count;
                        i64 index = (i64)indices[k];
                        if (index < 0) index += axisLength;
                        T value{};
                        if (index >= 0 && index < axisLength) value = data[(o * axisLength + index) * innerUnits + c];
                        out[i] = value;
                    }
                }

                """
        return CUDASource(name: name, code: code)
    }

    /// `out[e] = data[e with its axis coordinate replaced by indices[e]]`; the output has the indices' shape.
    static func gatherElementsSource(unit: Int, rank: Int, indexType: String) -> CUDASource {
        let name = "kiln_gather_elements_u\(unit)_r\(rank)_\(indexSuffix(indexType))"
        let code =
            CUDAShapeKernels.unitDeclaration(unit) + """
                extern "C" __global__ void \(name)(
                    T* __restrict__ out, const T* __restrict__ data, const \(indexType)* __restrict__ indices, i64 count,
                    KilnDims sizes, KilnDims dataStrides, int axis, i64 axisLength)
                {
                    const i64 step = (i64)gridDim.x * blockDim.x;
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += step) {
                        i64 rem = i;
                        i64 src = 0;
                        bool inside = true;
                        #pragma unroll
                        for (int d = \(rank - 1); d >= 0; --d) {
                            const i64 q = rem / sizes.v[d];
                            i64 c = rem - q * sizes.v[d];
                            rem = q;
                            if (d == axis) {
                                c = (i64)indices[i];
                                if (c < 0) c += axisLength;
                                if (c < 0 || c >= axisLength) inside = false;
                            }
                            src += c * dataStrides.v[d];
                        }
                        T value{};
                        if (inside) value = data[src];
                        out[i] = value;
                    }
                }

                """
        return CUDASource(name: name, code: code)
    }
}
