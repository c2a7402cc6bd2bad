import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

/// RNN, GRU and LSTM against step-by-step references written out here for one batch row at a time.
struct RecurrentTests {
    private func matVec(_ m: [Float], _ rowOffset: Int, _ cols: Int, _ v: [Float]) -> Float {
        (0..<cols).reduce(0) { $0 + m[rowOffset * cols + $1] * v[$1] }
    }

    @Test(arguments: [RecurrentDirection.forward, .reverse]) func rnnMatchesReference(
        direction: RecurrentDirection
    ) throws {
        var gen = SeededGenerator(seed: 31)
        let (seq, batch, input, hidden) = (4, 2, 3, 5)
        let x = Tensor.random([seq, batch, input], using: &gen)
        let w = Tensor.random([1, hidden, input], using: &gen)
        let r = Tensor.random([1, hidden, hidden], using: &gen)
        let b = Tensor.random([1, 2 * hidden], using: &gen)
        let layer = RecurrentLayer(cell: .rnn, direction: direction, hiddenSize: hidden, activations: [.init(.tanh)])
        let outs = try LayerRunner.run(layer, inputs: [x, w, r, b].map { .tensor($0) }, outputCount: 2)
        let (xv, wv, rv, bv) = (
            x.scalars(as: Float.self), w.scalars(as: Float.self), r.scalars(as: Float.self), b.scalars(as: Float.self)
        )
        var expectedY = [Float](repeating: 0, count: seq * batch * hidden)
        var expectedH = [Float](repeating: 0, count: batch * hidden)
        for bi in 0..<batch {
            var h = [Float](repeating: 0, count: hidden)
            for step in 0..<seq {
                let t = direction == .reverse ? seq - 1 - step : step
                let xt = Array(xv[((t * batch + bi) * input)..<((t * batch + bi + 1) * input)])
                h = (0..<hidden).map { j in
                    tanh(matVec(wv, j, input, xt) + matVec(rv, j, hidden, h) + bv[j] + bv[hidden + j])
                }
                for j in 0..<hidden { expectedY[(t * batch + bi) * hidden + j] = h[j] }
            }
            for j in 0..<hidden { expectedH[bi * hidden + j] = h[j] }
        }
        #expect(
            Comparison.mismatch(try outs[0].asTensor(), Tensor(shape: [seq, 1, batch, hidden], scalars: expectedY))
                == nil)
        #expect(
            Comparison.mismatch(try outs[1].asTensor(), Tensor(shape: [1, batch, hidden], scalars: expectedH)) == nil)
    }

    @Test func lstmSingleStepMatchesReference() throws {
        var gen = SeededGenerator(seed: 32)
        let (input, hidden) = (3, 2)
        let x = Tensor.random([1, 1, input], using: &gen)
        let w = Tensor.random([1, 4 * hidden, input], using: &gen)
        let r = Tensor.random([1, 4 * hidden, hidden], using: &gen)
        let h0 = Tensor.random([1, 1, hidden], using: &gen)
        let c0 = Tensor.random([1, 1, hidden], using: &gen)
        let layer = RecurrentLayer(
            cell: .lstm, direction: .forward, hiddenSize: hidden,
            activations: [.init(.sigmoid), .init(.tanh), .init(.tanh)])
        let outs = try LayerRunner.run(
            layer, inputs: [.tensor(x), .tensor(w), .tensor(r), nil, nil, .tensor(h0), .tensor(c0)], outputCount: 3)
        let (xv, wv, rv) = (x.scalars(as: Float.self), w.scalars(as: Float.self), r.scalars(as: Float.self))
        let (hv, cv) = (h0.scalars(as: Float.self), c0.scalars(as: Float.self))
        func gate(_ g: Int, _ j: Int) -> Float {
            matVec(wv, g * hidden + j, input, xv) + matVec(rv, g * hidden + j, hidden, hv)
        }
        func sigmoid(_ v: Float) -> Float { 1 / (1 + exp(-v)) }
        var expectedH: [Float] = []
        var expectedC: [Float] = []
        for j in 0..<hidden {
            let c = sigmoid(gate(2, j)) * cv[j] + sigmoid(gate(0, j)) * tanh(gate(3, j))
            expectedC.append(c)
            expectedH.append(sigmoid(gate(1, j)) * tanh(c))
        }
        #expect(Comparison.mismatch(try outs[1].asTensor(), Tensor(shape: [1, 1, hidden], scalars: expectedH)) == nil)
        #expect(Comparison.mismatch(try outs[2].asTensor(), Tensor(shape: [1, 1, hidden], scalars: expectedC)) == nil)
    }

    @Test func gruTypeInferenceFollowsTheLayout() throws {
        let layer = RecurrentLayer(
            cell: .gru, direction: .bidirectional, hiddenSize: 7, activations: Array(repeating: .init(.tanh), count: 4),
            batchFirst: true)
        let types = try layer.inferTypes([LayerInput(type: .tensor(TensorType(.float32, [.symbol("B"), 9, 3])))])
        #expect(types[0] == .tensor(TensorType(.float32, [.symbol("B"), 9, 2, 7])))
        #expect(types[1] == .tensor(TensorType(.float32, [.symbol("B"), 2, 7])))
    }
}
