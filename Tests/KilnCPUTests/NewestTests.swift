import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

private func floats(_ t: Tensor) -> [Double] { t.scalars(as: Float.self).map(Double.init) }

@Suite struct NewestTests {
    @Test func bitCastKeepsBits() throws {
        let x = Tensor(shape: [3], scalars: [Float(1), -2.5, 0.1])
        let y = try LayerRunner.run(BitCastLayer(to: .int32), x)
        #expect(y.dtype == .int32)
        #expect(y.scalars(as: Int32.self) == [1, -2.5, 0.1].map { Int32(bitPattern: Float($0).bitPattern) })
        let back = try LayerRunner.run(BitCastLayer(to: .float32), y)
        #expect(back.scalars(as: Float.self) == [1, -2.5, 0.1])
        #expect(throws: KilnError.self) { try LayerRunner.run(BitCastLayer(to: .int64), x) }
        let input = LayerInput(type: .tensor(TensorType(.int16, [.symbol("n")])))
        let t = try BitCastLayer(to: .uint16).inferTypes([input])
        #expect(t[0] == .tensor(TensorType(.uint16, [.symbol("n")])))
    }

    @Test func swiGLUMatchesFormula() throws {
        var g = SeededGenerator(seed: 7)
        let a = Tensor.random([4, 6], using: &g)
        let b = Tensor.random([4, 6], using: &g)
        let y = floats(try LayerRunner.run(GatedActivationLayer(gate: .swish, alpha: 1.7), a, b))
        let av = floats(a)
        let bv = floats(b)
        for i in 0..<av.count {
            let want = av[i] / (1 + exp(-1.7 * av[i])) * bv[i]
            #expect(abs(y[i] - want) < 1e-5)
        }
        #expect(throws: KilnError.self) {
            try LayerRunner.run(GatedActivationLayer(), a, Tensor.random([6, 4], using: &g))
        }
    }

    @Test func tensorScatterLinearAndCircular() throws {
        // cache [2, 4, 2] (batch, seq, dim), update [2, 2, 2].
        let past = Tensor(shape: [2, 4, 2], scalars: (0..<16).map { Float($0) })
        let update = Tensor(shape: [2, 2, 2], scalars: (0..<8).map { Float(100 + $0) })
        let idx = Tensor(shape: [2], scalars: [Int64(1), 3])
        let starts = Tensor(shape: [2], scalars: [Int64(0), 2])
        let lin = try LayerRunner.run(TensorScatterLayer(axis: -2), past, update, starts)
        #expect(
            lin.scalars(as: Float.self)
                == [100, 101, 102, 103, 4, 5, 6, 7, 8, 9, 10, 11, 104, 105, 106, 107])
        let circ = try LayerRunner.run(TensorScatterLayer(axis: 1, circular: true), past, update, idx)
        #expect(
            circ.scalars(as: Float.self)
                == [0, 1, 100, 101, 102, 103, 6, 7, 106, 107, 10, 11, 12, 13, 104, 105])
        #expect(throws: KilnError.self) { try LayerRunner.run(TensorScatterLayer(axis: 1), past, update, idx) }
    }
}
