/// The one error family of Kiln. Every case carries enough context to name the file, node, layer or tensor
/// that went wrong, so a command-line user sees one actionable line.
public struct KilnError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case invalidModel = "invalid model"
        /// A plan file that is corrupt, truncated, or built for another device or Kiln.
        case invalidPlan = "invalid plan"
        case unsupported = "unsupported"
        case shapeMismatch = "shape mismatch"
        case typeMismatch = "type mismatch"
        case invalidArgument = "invalid argument"
        case io = "I/O error"
        case runtime = "runtime error"
        case verification = "verification failed"
    }

    public var kind: Kind
    public var message: String
    /// Where it happened, outermost first: file, graph, node, tensor.
    public var context: [String]

    public init(_ kind: Kind, _ message: String, context: [String] = []) {
        self.kind = kind
        self.message = message
        self.context = context
    }

    public var description: String {
        context.isEmpty ? message : context.joined(separator: ": ") + ": " + message
    }

    /// The same error with one more location in front, e.g. the node that was executing.
    public func within(_ location: String) -> KilnError {
        var copy = self
        copy.context.insert(location, at: 0)
        return copy
    }

    public static func invalidModel(_ message: String) -> KilnError { KilnError(.invalidModel, message) }
    public static func invalidPlan(_ message: String) -> KilnError { KilnError(.invalidPlan, message) }
    public static func unsupported(_ message: String) -> KilnError { KilnError(.unsupported, message) }
    public static func invalidArgument(_ message: String) -> KilnError { KilnError(.invalidArgument, message) }
    public static func shapeMismatch(_ message: String) -> KilnError { KilnError(.shapeMismatch, message) }
    public static func typeMismatch(_ message: String) -> KilnError { KilnError(.typeMismatch, message) }
    public static func runtime(_ message: String) -> KilnError { KilnError(.runtime, message) }
    public static func io(_ message: String) -> KilnError { KilnError(.io, message) }
}

/// Runs `body`, prefixing any error with `location`; non-Kiln errors become runtime errors.
@inlinable
public func withErrorContext<T>(_ location: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as KilnError {
        throw error.within(location())
    } catch {
        throw KilnError.runtime("\(error)").within(location())
    }
}
