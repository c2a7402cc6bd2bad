import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

/// Naive element access for reference computations: the flat offset of a multi-index.
private func offset(_ index: [Int], _ shape: [Int]) -> Int {
    var o = 0
    for (i, d) in zip(index, shape) { o = o * d + i }
    return o
}

/// Every multi-index of `shape` in row-major order.
private func allIndices(_ shape: [Int]) -> [[Int]] {
    var result: [[Int]] = [[]]
    for d in shape { result = result.flatMap { prefix in (0..<d).map { prefix + [$0] } } }
    return result
}

@Suite struct ShapeTests {
    @Test func reshapeIsZeroCopyAndResolvesZeroAndMinusOne() throws {
        var g = SeededGenerator(seed: 1)
        let x = Tensor.random([2, 3, 4], using: &g)
        let y = try LayerRunner.run(ReshapeLayer(.reshape(shape: [0, -1], allowZero: false)), x)
        #expect(y.shape == [2, 12])
        #expect(y.storage === x.storage)
        let f = try LayerRunner.run(ReshapeLayer(.flatten(axis: -1)), x)
        #expect(f.shape == [6, 4])
        let s = try LayerRunner.run(ReshapeLayer(.unsqueeze(axes: [0, -1])), x)
        #expect(s.shape == [1, 2, 3, 4, 1])
        let q = try LayerRunner.run(ReshapeLayer(.squeeze(axes: nil)), s)
        #expect(q.shape == [2, 3, 4])
        #expect(throws: KilnError.self) {
            try LayerRunner.run(ReshapeLayer(.reshape(shape: [5, -1], allowZero: false)), x)
        }
    }

    @Test(arguments: [[0, 2, 3, 1], [3, 2, 1, 0], [1, 0, 2, 3], [0, 1, 3, 2]], [[2, 3, 5, 7], [2, 16, 9, 40]])
    func transposeMatchesNaive(perm: [Int], shape: [Int]) throws {
        var g = SeededGenerator(seed: 2)
        let x = Tensor.random(shape, using: &g)
        let y = try LayerRunner.run(TransposeLayer(perm: perm), x)
        let outShape = perm.map { shape[$0] }
        #expect(y.shape == outShape)
        let xs = x.scalars(as: Float.self)
        let ys = y.scalars(as: Float.self)
        for idx in allIndices(outShape) {
            var src = [Int](repeating: 0, count: 4)
            for (o, p) in perm.enumerated() { src[p] = idx[o] }
            #expect(ys[offset(idx, outShape)] == xs[offset(src, shape)])
        }
    }

    @Test func transposeOfDoublesUsesTiles() throws {
        let shape = [33, 70]
        let x = Tensor(shape: shape, scalars: (0..<(33 * 70)).map { Double($0) * 0.5 - 3 })
        let y = try LayerRunner.run(TransposeLayer(perm: nil), x)
        let a = x.scalars(as: Double.self)
        let b = y.scalars(as: Double.self)
        for r in 0..<33 { for c in 0..<70 { #expect(b[c * 33 + r] == a[r * 70 + c]) } }
    }

    @Test func transposeOfStringsAndInt8() throws {
        let s = Tensor(shape: [2, 3], strings: ["a", "b", "c", "d", "e", "f"])
        let t = try LayerRunner.run(TransposeLayer(perm: nil), s)
        #expect(t.strings == ["a", "d", "b", "e", "c", "f"])
        var g = SeededGenerator(seed: 3)
        let i = Tensor.randomIntegers(Int8.self, [3, 4], in: -100...100, using: &g)
        let u = try LayerRunner.run(TransposeLayer(perm: [1, 0]), i)
        let a = i.scalars(as: Int8.self)
        let b = u.scalars(as: Int8.self)
        for r in 0..<3 { for c in 0..<4 { #expect(b[c * 3 + r] == a[r * 4 + c]) } }
    }

    @Test func concatAndSplitRoundTrip() throws {
        var g = SeededGenerator(seed: 4)
        let a = Tensor.random([2, 3, 4], using: &g)
        let b = Tensor.random([2, 5, 4], using: &g)
        let c = try LayerRunner.run(ConcatLayer(axis: 1), a, b)
        #expect(c.shape == [2, 8, 4])
        let cs = c.scalars(as: Float.self)
        let asx = a.scalars(as: Float.self)
        let bs = b.scalars(as: Float.self)
        for idx in allIndices([2, 8, 4]) {
            let expected =
                idx[1] < 3 ? asx[offset(idx, [2, 3, 4])] : bs[offset([idx[0], idx[1] - 3, idx[2]], [2, 5, 4])]
            #expect(cs[offset(idx, [2, 8, 4])] == expected)
        }
        let parts = try LayerRunner.run(
            SplitLayer(axis: 1, sizes: [3, 5], outputCount: 2), inputs: [.tensor(c)],
            outputCount: 2)
        #expect(try parts[0].asTensor().scalars(as: Float.self) == asx)
        #expect(try parts[1].asTensor().scalars(as: Float.self) == bs)
        let even = SplitLayer(axis: 0, sizes: nil, outputCount: 3)
        #expect(try even.pieces(length: 7, runtime: nil) == [3, 3, 1])
    }

    @Test func sliceWithNegativeStepsAndClamping() throws {
        var g = SeededGenerator(seed: 5)
        let x = Tensor.random([6, 5], using: &g)
        let layer = SliceLayer(starts: [-1, 100], ends: [-100, 1], axes: [0, 1], steps: [-2, -1], isStatic: true)
        let y = try LayerRunner.run(layer, x)
        #expect(y.shape == [3, 3])
        let xs = x.scalars(as: Float.self)
        let ys = y.scalars(as: Float.self)
        for (i, r) in [5, 3, 1].enumerated() {
            for (j, c) in [4, 3, 2].enumerated() { #expect(ys[i * 3 + j] == xs[r * 5 + c]) }
        }
        // The same slice with run-time parameters.
        let dynamic = SliceLayer(starts: nil, ends: nil, axes: nil, steps: nil, isStatic: false)
        let z = try LayerRunner.run(
            dynamic, x, .int64([-1, 100]), .int64([-100, 1]), .int64([0, 1]), .int64([-2, -1]))
        #expect(z.scalars(as: Float.self) == ys)
    }

    @Test func expandAndTile() throws {
        let x = Tensor(shape: [2, 1], scalars: [Float(1), 2])
        let e = try LayerRunner.run(ExpandLayer(shape: [2, 1, 3]), x)
        #expect(e.shape == [2, 2, 3])
        #expect(e.scalars(as: Float.self) == [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2])
        let t = try LayerRunner.run(TileLayer(repeats: [2, 3]), Tensor(shape: [1, 2], scalars: [Int32(7), 8]))
        #expect(t.shape == [2, 6])
        #expect(t.scalars(as: Int32.self) == [7, 8, 7, 8, 7, 8, 7, 8, 7, 8, 7, 8])
    }

    @Test func padModes() throws {
        let x = Tensor(shape: [3, 2], scalars: [Float(1.0), 1.2, 2.3, 3.4, 4.5, 5.7])
        let r = try LayerRunner.run(PadLayer(mode: .reflect, pads: [0, 2, 0, 0], value: nil, axes: nil), x)
        #expect(r.scalars(as: Float.self) == [1.0, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7])
        let e = try LayerRunner.run(PadLayer(mode: .edge, pads: [0, 2, 0, 0], value: nil, axes: nil), x)
        #expect(e.scalars(as: Float.self) == [1.0, 1.0, 1.0, 1.2, 2.3, 2.3, 2.3, 3.4, 4.5, 4.5, 4.5, 5.7])
        let w = try LayerRunner.run(PadLayer(mode: .wrap, pads: [1, 0, 0, 1], value: nil, axes: nil), x)
        #expect(w.shape == [4, 3])
        #expect(w.scalars(as: Float.self) == [4.5, 5.7, 4.5, 1.0, 1.2, 1.0, 2.3, 3.4, 2.3, 4.5, 5.7, 4.5])
        let c = try LayerRunner.run(PadLayer(mode: .constant, pads: [1, -1], value: 9, axes: [1]), x)
        #expect(c.scalars(as: Float.self) == [9, 1.0, 9, 2.3, 9, 4.5])
    }

    @Test func depthToSpaceInvertsSpaceToDepth() throws {
        var g = SeededGenerator(seed: 6)
        let x = Tensor.random([1, 2, 4, 6], using: &g)
        for mode in [DepthSpaceLayer.Mode.dcr, .crd] {
            let d = try LayerRunner.run(DepthSpaceLayer(.spaceToDepth, blockSize: 2, mode: mode), x)
            #expect(d.shape == [1, 8, 2, 3])
            let back = try LayerRunner.run(DepthSpaceLayer(.depthToSpace, blockSize: 2, mode: mode), d)
            #expect(back.scalars(as: Float.self) == x.scalars(as: Float.self))
        }
    }

    @Test func resizeLinearAndNearest() throws {
        let x = Tensor(shape: [1, 1, 2, 2], scalars: [Float(1), 2, 3, 4])
        var p = ResizeLayer.Parameters()
        p.mode = .linear
        let y = try LayerRunner.run(ResizeLayer(p, scales: [1, 1, 2, 2], sizes: nil), x)
        #expect(y.shape == [1, 1, 4, 4])
        let expectedRow0: [Float] = [1, 1.25, 1.75, 2]
        #expect(Array(y.scalars(as: Float.self)[0..<4]) == expectedRow0)
        p.mode = .nearest
        let n = try LayerRunner.run(
            ResizeLayer(p, scales: nil, sizes: [1, 1, 4, 4]),
            Tensor(
                shape: [1, 1, 2, 2],
                scalars: [Int64(1), 2, 3, 4]))
        #expect(Array(n.scalars(as: Int64.self)[0..<8]) == [1, 1, 2, 2, 1, 1, 2, 2])
    }

    @Test func generatorsAndShapeOf() throws {
        let x = Tensor(zeros: .float32, shape: [2, 3, 4])
        #expect(try LayerRunner.run(ShapeOfLayer(start: 1), x).scalars(as: Int64.self) == [3, 4])
        #expect(try LayerRunner.run(SizeLayer(), x).scalars(as: Int64.self) == [24])
        let r = try LayerRunner.run(
            RangeLayer(), Tensor(scalar: Int32(10)), Tensor(scalar: Int32(4)), Tensor(scalar: Int32(-3)))
        #expect(r.scalars(as: Int32.self) == [10, 7])
        let t = try LayerRunner.run(
            TriluLayer(upper: true), Tensor(shape: [2, 3], scalars: [Float(1), 2, 3, 4, 5, 6]))
        #expect(t.scalars(as: Float.self) == [1, 2, 3, 0, 5, 6])
        let eye = try LayerRunner.run(EyeLikeLayer(dtype: .int32, k: 1), Tensor(zeros: .float32, shape: [2, 3]))
        #expect(eye.scalars(as: Int32.self) == [0, 1, 0, 0, 0, 1])
    }

    @Test func runtimeShapeInputsAndCenterCropPad() throws {
        var g = SeededGenerator(seed: 7)
        let x = Tensor.random([4, 6], using: &g)
        let r = try LayerRunner.run(ReshapeLayer(.reshape(shape: nil, allowZero: false)), x, .int64([3, -1]))
        #expect(r.shape == [3, 8])
        let c = try LayerRunner.run(CenterCropPadLayer(axes: nil), x, .int64([2, 9]))
        #expect(c.shape == [2, 9])
        let xs = x.scalars(as: Float.self)
        let cs = c.scalars(as: Float.self)
        // Rows 1...2 are kept; columns are padded by 1 before and 2 after.
        for i in 0..<2 {
            for j in 0..<9 { #expect(cs[i * 9 + j] == (j >= 1 && j < 7 ? xs[(i + 1) * 6 + j - 1] : 0)) }
        }
        let out = try LayerRunner.run(DropoutLayer(), inputs: [.tensor(x)], outputCount: 2)
        #expect(try out[0].asTensor().scalars(as: Float.self) == xs)
        #expect(try out[1].asTensor().scalars(as: Bool.self).allSatisfy { $0 })
    }

    @Test func gridSampleWithIdentityGridReproducesInput() throws {
        var g = SeededGenerator(seed: 8)
        let x = Tensor.random([1, 2, 3, 4], using: &g)
        let theta = Tensor(shape: [1, 2, 3], scalars: [Float(1), 0, 0, 0, 1, 0])
        for align in [false, true] {
            let grid = try LayerRunner.run(AffineGridLayer(alignCorners: align), theta, .int64([1, 2, 3, 4]))
            #expect(grid.shape == [1, 3, 4, 2])
            for mode in [GridSampleLayer.Mode.linear, .nearest, .cubic] {
                let layer = GridSampleLayer(mode: mode, padding: .border, alignCorners: align)
                let y = try LayerRunner.run(layer, x, grid)
                #expect(Comparison.mismatch(y, x, rtol: 1e-5, atol: 1e-5) == nil)
            }
        }
    }

    @Test func typeInferenceKeepsSymbols() throws {
        let input = LayerInput(type: .tensor(TensorType(.float32, [.symbol("N"), 3, 4])))
        let flat = try ReshapeLayer(.reshape(shape: [0, -1], allowZero: false)).inferTypes([input])
        #expect(flat[0]?.tensorType?.shape == [.symbol("N"), 12])
        let t = try TransposeLayer(perm: [2, 0, 1]).inferTypes([input])
        #expect(t[0]?.tensorType?.shape == [4, .symbol("N"), 3])
        let s = try SliceLayer(starts: [1], ends: [100], axes: [2], steps: nil, isStatic: true).inferTypes([input])
        #expect(s[0]?.tensorType?.shape == [.symbol("N"), 3, 3])
        let c = try ConcatLayer(axis: 1).inferTypes([input, input])
        #expect(c[0]?.tensorType?.shape == [.symbol("N"), 6, 4])
    }
}
