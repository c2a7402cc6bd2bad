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
        let t = try BitCastLayer(to: .uint16).inferTypes([LayerInput(type: .tensor(TensorType(.int16, [.symbol("n")])))])
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
        let lin = try LayerRunner.run(TensorScatterLayer(axis: -2), past, update, Tensor(shape: [2], scalars: [Int64(0), 2]))
        #expect(
            lin.scalars(as: Float.self)
                == [100, 101, 102, 103, 4, 5, 6, 7, 8, 9, 10, 11, 104, 105, 106, 107])
        let circ = try LayerRunner.run(TensorScatterLayer(axis: 1, circular: true), past, update, idx)
        #expect(
            circ.scalars(as: Float.self)
                == [0, 1, 100, 101, 102, 103, 6, 7, 106, 107, 10, 11, 12, 13, 104, 105])
        #expect(throws: KilnError.self) { try LayerRunner.run(TensorScatterLayer(axis: 1), past, update, idx) }
    }

    @Test func causalConvCarriesState() throws {
        var g = SeededGenerator(seed: 11)
        let (b, c, l, k) = (2, 3, 5, 4)
        let x = Tensor.random([b, c, l], using: &g)
        let w = Tensor.random([c, 1, k], using: &g)
        let bias = Tensor.random([c], using: &g)
        let past = Tensor.random([b, c, k - 1], using: &g)
        let out = try LayerRunner.run(
            CausalConvWithStateLayer(activation: .silu), inputs: [.tensor(x), .tensor(w), .tensor(bias), .tensor(past)],
            outputCount: 2)
        let y = floats(try out[0].asTensor())
        let state = try out[1].asTensor()
        #expect(state.shape == [b, c, k - 1])
        let (xv, wv, bv, pv) = (floats(x), floats(w), floats(bias), floats(past))
        for bc in 0..<(b * c) {
            let line = Array(pv[(bc * (k - 1))..<((bc + 1) * (k - 1))]) + Array(xv[(bc * l)..<((bc + 1) * l)])
            for t in 0..<l {
                var acc = bv[bc % c]
                for j in 0..<k { acc += wv[(bc % c) * k + j] * line[t + j] }
                acc = acc / (1 + exp(-acc))
                #expect(abs(y[bc * l + t] - acc) < 1e-5)
            }
            #expect(Array(floats(state)[(bc * (k - 1))..<((bc + 1) * (k - 1))]) == Array(line[l...]))
        }
    }

    /// Running the recurrence as one prefill equals running it token by token with the state carried.
    @Test(arguments: ["linear", "gated", "delta", "gated_delta"])
    func linearAttentionPrefillEqualsDecode(rule: String) throws {
        let kind = try #require(LinearAttentionLayer.UpdateRule(rawValue: rule))
        var g = SeededGenerator(seed: 5)
        let (b, t, hq, hkv, dk, dv) = (2, 3, 4, 2, 3, 2)
        let layer = LinearAttentionLayer(queryHeads: hq, keyValueHeads: hkv, rule: kind)
        let q = Tensor.random([b, t, hq * dk], using: &g)
        let k = Tensor.random([b, t, hkv * dk], using: &g)
        let v = Tensor.random([b, t, hkv * dv], using: &g)
        let decay = Tensor.random([b, t, hkv], in: -1...0, using: &g)
        let beta = Tensor.random([b, t, hkv], in: 0...1, using: &g)
        func inputs(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ s: Tensor?, _ d: Tensor, _ be: Tensor) -> [Value?] {
            [.tensor(q), .tensor(k), .tensor(v), s.map { .tensor($0) }, kind.isGated ? .tensor(d) : nil,
             kind.isDelta ? .tensor(be) : nil]
        }
        let full = try LayerRunner.run(layer, inputs: inputs(q, k, v, nil, decay, beta), outputCount: 2)
        func step(_ x: Tensor, _ i: Int) -> Tensor {
            let w = x.shape[2]
            let xv = x.scalars(as: Float.self)
            return Tensor(shape: [b, 1, w], scalars: (0..<b).flatMap { bb in xv[((bb * t + i) * w)..<((bb * t + i + 1) * w)] })
        }
        var state: Tensor? = nil
        let fullOut = floats(try full[0].asTensor())
        for i in 0..<t {
            let r = try LayerRunner.run(
                layer, inputs: inputs(step(q, i), step(k, i), step(v, i), state, step(decay, i), step(beta, i)),
                outputCount: 2)
            state = try r[1].asTensor()
            let o = floats(try r[0].asTensor())
            for bb in 0..<b {
                for j in 0..<(hq * dv) {
                    #expect(abs(o[bb * hq * dv + j] - fullOut[(bb * t + i) * hq * dv + j]) < 1e-5)
                }
            }
        }
        let finalState = floats(try full[1].asTensor())
        #expect(try zip(floats(#require(state)), finalState).allSatisfy { abs($0 - $1) < 1e-5 })
        // One token from zero state with the linear rule: o = scale * q·k v.
        if kind == .linear {
            let qv = floats(q)
            let kv = floats(k)
            let vv = floats(v)
            var dot = 0.0
            for d in 0..<dk { dot += qv[d] * kv[d] }  // batch 0, token 0, query head 0 reads kv head 0
            #expect(abs(fullOut[0] - dot * vv[0] / sqrt(Double(dk))) < 1e-5)
        }
    }
}
