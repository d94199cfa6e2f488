import Foundation
import Logging
import RagCore
import RagWire
import RagClient
import Tracing
import Synchronization

/// What a handler knows about its call.
public struct CallContext: Sendable {
    public var callID: UInt64
    public var method: String
    public var requestID: String
    public var deadline: ContinuousClock.Instant?
    public var logger: Logger
    /// The caller, as its API key says (anonymous on a server without keys,
    /// and on the internal listener, where the client certificate is the identity).
    public var principal: Principal = .anonymous
}

/// Sends one stream message (a serialized method message) of the current call.
public typealias StreamSink = @Sendable (Data) async throws -> Void

public enum RPCHandler: Sendable {
    case unary(@Sendable (Data, CallContext) async throws -> Data)
    case stream(@Sendable (Data, CallContext, StreamSink) async throws -> Void)
}

/// Routes request frames to handlers and turns every outcome into frames.
/// Knows nothing of NIO: the transport hands it frames and a `send` function.
public final class Dispatcher: Sendable {
    let handlers: [String: RPCHandler]
    let logger: Logger
    let metrics: RagMetrics?

    /// Largest payload an answer may carry: a frame is at most `maxFrameSize`
    /// bytes and its header needs some room (no client accepts a larger frame).
    let maxPayloadBytes: Int

    /// Server paths (the data directory, absolute and as given) never sent to clients.
    let redactedPaths: [String]

    /// Checks every call's key; nil: calls are trusted (the internal listener,
    /// whose clients proved themselves with a certificate).
    let authorizer: Authorizer?
    let accessLog: Bool

    /// `accessLog`: one info line per finished call (status, duration) for log shippers.
    public init(handlers: [String: RPCHandler], logger: Logger, metrics: RagMetrics? = nil, maxFrameSize: Int = FrameCodec.defaultMaxFrameSize,
                dataDirectory: String = "", authorizer: Authorizer? = nil, accessLog: Bool = false) {
        self.accessLog = accessLog
        self.authorizer = authorizer
        redactedPaths = dataDirectory.isEmpty ? [] : [URL(fileURLWithPath: dataDirectory).standardizedFileURL.path, dataDirectory].sorted { $0.count > $1.count }
        self.maxPayloadBytes = maxFrameSize - 1024
        self.handlers = handlers
        self.logger = logger
        self.metrics = metrics
    }

    /// Runs one call to completion. Never throws: failures become ERROR frames
    /// (unknown method: UNIMPLEMENTED; deadline: DEADLINE_EXCEEDED; cancel: CANCELLED).
    public func handle(_ frame: Ragd_V1_Frame, receivedAt: ContinuousClock.Instant, send: @escaping @Sendable (Ragd_V1_Frame) async -> Void) async {
        guard accessLog else { return await serve(frame, receivedAt: receivedAt, send: send) }
        let outcome = Mutex<(code: RagError.Code, requestID: String)?>(nil)
        await serve(frame, receivedAt: receivedAt) { f in
            if f.kind != .streamMessage {
                outcome.withLock { $0 = (f.kind == .error ? (RagError.Code(rawValue: f.status.rawValue) ?? .unknown) : .ok, f.metadata.requestID) }
            }
            await send(f)
        }
        let (code, requestID) = outcome.withLock { $0 } ?? (.unknown, frame.metadata.requestID)
        var logger = self.logger
        logger[metadataKey: "request.id"] = "\(requestID)"
        logger.info("call", metadata: ["method": "\(frame.method.truncatedUTF8(maxBytes: 64))", "status": "\(code)",
                                        "duration_ms": "\(String(format: "%.3f", receivedAt.elapsedSeconds * 1000))"])
    }

    func serve(_ frame: Ragd_V1_Frame, receivedAt: ContinuousClock.Instant, send: @escaping @Sendable (Ragd_V1_Frame) async -> Void) async {
        let requestID = frame.metadata.requestID.isEmpty ? Self.newRequestID() : frame.metadata.requestID
        var logger = self.logger
        logger[metadataKey: "request.id"] = "\(requestID)"
        logger[metadataKey: "method"] = "\(frame.method)"
        let deadlineMS = frame.metadata.deadlineMs
        let deadline = deadlineMS > 0 ? receivedAt.advanced(by: .milliseconds(Int64(min(deadlineMS, UInt64(Int64.max / 1_000_000))))) : nil
        let context = CallContext(callID: frame.callID, method: frame.method, requestID: requestID, deadline: deadline, logger: logger)
        var reply = Ragd_V1_Frame()
        reply.callID = frame.callID
        reply.method = frame.method
        reply.metadata.requestID = requestID
        guard let handler = handlers[frame.method] else {
            logger.debug("unknown method")
            metrics?.rpcError(method: "unknown", code: RagError.Code.unimplemented.description)
            await send(.error(callID: frame.callID, method: frame.method,
                              RagError(.unimplemented, "method \(frame.method.truncatedUTF8(maxBytes: 64).debugDescription) is not implemented; known: \(handlers.keys.sorted().joined(separator: ", "))")))
            return
        }
        // A server span per call, continuing the caller's trace (no-op without --otel-endpoint).
        var traceContext = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(frame.metadata, into: &traceContext, using: FrameMetadataCarrier())
        await withSpan(frame.method, context: traceContext, ofKind: .server) { span in
            span.attributes["rpc.system"] = "ragd"
            span.attributes["rpc.method"] = frame.method
            span.attributes["ragd.request_id"] = requestID
            await serve(frame, handler: handler, context: context, deadline: deadline, deadlineMS: deadlineMS, reply: reply, span: span, send: send)
        }
    }

    func serve(_ frame: Ragd_V1_Frame, handler: RPCHandler, context: CallContext, deadline: ContinuousClock.Instant?, deadlineMS: UInt64,
               reply: Ragd_V1_Frame, span: any Span, send: @escaping @Sendable (Ragd_V1_Frame) async -> Void) async {
        var context = context
        var reply = reply
        let logger = context.logger
        let requestID = context.requestID
        let payload = frame.payload
        do {
            if let authorizer {
                // The key is checked before the request is even decoded; only its
                // public id is ever logged.
                context.principal = try authorizer.authenticate(frame.metadata.apiKey, method: frame.method)
                if !context.principal.isAnonymous { context.logger[metadataKey: "key.id"] = "\(context.principal.keyID)" }
            }
            let context = context
            switch handler {
            case .unary(let body):
                let late = Self.completesDespiteDeadline.contains(frame.method)
                let response = try await Self.withDeadline(deadline, ms: deadlineMS, acceptLate: late) { try await body(payload, context) }
                try checkSize(response)
                reply.kind = .response
                reply.payload = response
                await send(reply)
            case .stream(let body):
                let template = reply
                try await Self.withDeadline(deadline, ms: deadlineMS) {
                    try await body(payload, context) { message in
                        try Task.checkCancellation()
                        try self.checkSize(message)
                        var m = template
                        m.kind = .streamMessage
                        m.payload = message
                        await send(m)
                    }
                }
                reply.kind = .endOfStream
                await send(reply)
            }
        } catch {
            let e = RagError(from: error)
            span.attributes["rpc.ragd.status_code"] = e.code.description
            span.setStatus(SpanStatus(code: .error, message: e.code.description))
            metrics?.rpcError(method: frame.method, code: e.code.description)
            if Self.serverSide.contains(e.code) { logger.error("call failed: \(e)") } else { logger.debug("call failed: \(e)") }
            var f = Ragd_V1_Frame.error(callID: frame.callID, method: frame.method, redacted(e, requestID: requestID))
            f.metadata.requestID = requestID
            await send(f)
        }
    }

    /// What a client may read of an error. Internal failures (INTERNAL, DATA_LOSS,
    /// UNKNOWN) carry file paths and library text: the client gets the code and
    /// the request id, the log has the rest. Other messages lose any server path.
    static let serverSide: Set<RagError.Code> = [.internal, .dataLoss, .unknown]

    func redacted(_ e: RagError, requestID: String) -> RagError {
        if Self.serverSide.contains(e.code), !e.messageIsForClient {
            return RagError(e.code, "\(e.code == .dataLoss ? "stored data failed a check" : "internal error") (request id \(requestID)); the server log has the details")
        }
        var message = e.message
        for path in redactedPaths where !path.isEmpty { message = message.replacingOccurrences(of: path, with: "<data-dir>") }
        return RagError(e.code, message, retryAfter: e.retryAfter)
    }

    /// An answer must fit in a frame: say so instead of sending what no client takes.
    func checkSize(_ payload: Data) throws(RagError) {
        guard payload.count <= maxPayloadBytes else {
            throw RagError(.resourceExhausted, "the answer is \(payload.count) bytes, more than a frame can carry (\(maxPayloadBytes)); "
                               + "ask for fewer results (top_k) or smaller chunks")
        }
    }

    /// Races `body` against the deadline; on expiry the body is cancelled (the
    /// engine checks for cancellation, so the work stops) and the call fails.
    /// Writes whose commit phase is not interrupted (see Coordinator.index): when
    /// one completes after its deadline, the client hears that it took effect.
    static let completesDespiteDeadline: Set<String> = [RagMethod.index.rawValue, RagMethod.delete.rawValue]

    static func withDeadline<T: Sendable>(_ deadline: ContinuousClock.Instant?, ms: UInt64, acceptLate: Bool = false,
                                          _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let deadline else { return try await body() }
        return try await CallDeadline.$current.withValue(deadline) { try await race(deadline, ms: ms, acceptLate: acceptLate, body) }
    }

    static func race<T: Sendable>(_ deadline: ContinuousClock.Instant, ms: UInt64, acceptLate: Bool = false,
                                  _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard deadline > .now else { throw RagError(.deadlineExceeded, "deadline of \(ms) ms passed before the call started") }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            defer { group.cancelAll() }
            if let first = try await group.next(), let value = first { return value }
            // The deadline passed: stop the body and hear how it ended. A body that
            // still completes (a write's commit phase is not cancelled) reports its
            // real outcome: a call that took effect is never reported as failed.
            group.cancelAll()
            do {
                if let last = try await group.next(), let value = last, acceptLate { return value }
            } catch let e as RagError where e.code == .cancelled || e.code == .deadlineExceeded {
                throw RagError(.deadlineExceeded, "deadline of \(ms) ms exceeded; \(e.message)")
            } catch {}
            throw RagError(.deadlineExceeded, "deadline of \(ms) ms exceeded")
        }
    }

    static func newRequestID() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }
}
