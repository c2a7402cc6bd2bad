import Foundation
import KilnIR

extension ModelImporter {
    /// Expands a call of a model-local function in place: formal parameters become the call's values, the
    /// body's own values get fresh names, and attribute references take the call's attributes.
    func inline(_ function: Onnx_FunctionProto, call: ONNXNode, into builder: GraphBuilder) throws {
        var rename: [String: String] = [:]
        for (i, formal) in function.input.enumerated() { rename[formal] = i < call.inputs.count ? call.inputs[i] : "" }
        for (i, formal) in function.output.enumerated() where i < call.outputs.count {
            rename[formal] = call.outputs[i]
        }
        var defaults: [String: Onnx_AttributeProto] = [:]
        for a in function.attributeProto { defaults[a.name] = a }
        var functionOpsets = opsets
        for o in function.opsetImport { functionOpsets[o.domain == "ai.onnx" ? "" : o.domain] = Int(o.version) }

        for (index, bodyNode) in function.node.enumerated() {
            var p = bodyNode
            p.input = p.input.map { name in name.isEmpty ? "" : mapped(name, &rename, builder, call) }
            p.output = p.output.map { name in name.isEmpty ? "" : mapped(name, &rename, builder, call) }
            p.attribute = try p.attribute.compactMap { a -> Onnx_AttributeProto? in
                guard !a.refAttrName.isEmpty else { return a }
                if let bound = callAttribute(call, a.refAttrName) ?? defaults[a.refAttrName] {
                    var resolved = bound
                    resolved.name = a.name
                    return resolved
                }
                if function.attribute.contains(a.refAttrName) { return nil }
                throw KilnError.invalidModel(
                    "function '\(function.name)' refers to unknown attribute '\(a.refAttrName)'")
            }
            if p.name.isEmpty {
                p.name = "\(call.name)/\(p.opType)_\(index)"
            } else {
                p.name = "\(call.name)/\(p.name)"
            }
            let node = try decodeNode(p, index: index)
            try withErrorContext("function '\(function.name)': \(node.location)") {
                try importNode(node, into: builder, opsets: functionOpsets)
            }
        }
    }

    private func mapped(
        _ name: String, _ rename: inout [String: String], _ builder: GraphBuilder, _ call: ONNXNode
    ) -> String {
        if let m = rename[name] { return m }
        let fresh = builder.uniqueName("\(call.name)/\(name)")
        rename[name] = fresh
        return fresh
    }

    /// The call's attribute as a proto again, so the body node decodes it as usual.
    private func callAttribute(_ call: ONNXNode, _ name: String) -> Onnx_AttributeProto? {
        guard let value = call.attributes[name] else { return nil }
        var a = Onnx_AttributeProto()
        a.name = name
        switch value {
        case .float(let v):
            a.type = .float
            a.f = v
        case .int(let v):
            a.type = .int
            a.i = v
        case .string(let v):
            a.type = .string
            a.s = Data(v.utf8)
        case .floats(let v):
            a.type = .floats
            a.floats = v
        case .ints(let v):
            a.type = .ints
            a.ints = v
        case .strings(let v):
            a.type = .strings
            a.strings = v.map { Data($0.utf8) }
        case .graph(let g):
            a.type = .graph
            a.g = g
        case .graphs(let g):
            a.type = .graphs
            a.graphs = g
        case .typeProto(let t):
            a.type = .typeProto
            a.tp = t
        case .tensor(let t):
            a.type = .tensor
            a.t = TensorEncoding.proto(t)
        case .tensors(let ts):
            a.type = .tensors
            a.tensors = ts.map { TensorEncoding.proto($0) }
        }
        return a
    }
}
