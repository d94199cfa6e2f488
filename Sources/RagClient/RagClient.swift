import Foundation
import NIOCore
import NIOPosix
import NIOSSL
@_exported import RagCore
import RagWire
import SwiftProtobuf
import Synchronization

/// A Ragd client: one TCP connection carrying any number of concurrent calls.
///
/// Connects lazily and reconnects on the next call after the connection drops
/// (a server restart fails only the calls in flight, with UNAVAILABLE). Every
/// failure is a `RagError` with the status code the server (or the client) chose.
/// With `tls` the connection is TLS (verified against `tls.caFile`); `apiKey`
/// travels in every request's metadata.
public final class RagClient: Sendable {
    public let host: String
    public let port: Int
    /// Used when a call passes no timeout; nil: no deadline.
    public let defaultTimeout: Duration?
    let group: any EventLoopGroup
    let maxFrameSize: Int
    let calls = CallTable()
    private let channel = Mutex<(any Channel)?>(nil)
    let apiKey: String?
    let tls: ClientTLS?
    /// Loaded on first connect; a bad file fails each call with INVALID_ARGUMENT.
    private let tlsContext = Mutex<NIOSSLContext?>(nil)

    public init(host: String = "127.0.0.1", port: Int = 7878, defaultTimeout: Duration? = nil,
                maxFrameSize: Int = FrameCodec.defaultMaxFrameSize, apiKey: String? = nil, tls: ClientTLS? = nil,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.apiKey = apiKey
        self.tls = tls
        self.host = host
        self.port = port
        self.defaultTimeout = defaultTimeout
        self.maxFrameSize = maxFrameSize
        self.group = eventLoopGroup
    }

    deinit {
        channel.withLock { $0 }?.close(promise: nil)
    }

    /// Closes the connection; calls in flight fail with UNAVAILABLE.
    public func close() async {
        let ch = channel.withLock { c -> (any Channel)? in defer { c = nil }; return c }
        try? await ch?.close()
    }

    func connection() async throws(RagError) -> any Channel {
        if let ch = channel.withLock({ $0 }), ch.isActive { return ch }
        let calls = self.calls
        let maxFrame = maxFrameSize
        let ssl = try sslContext()
        let sni = tls?.hostname(for: host)
        do {
            let ch = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        if let ssl { try ch.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: ssl, serverHostname: sni)) }
                        try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)))
                        try ch.pipeline.syncOperations.addHandler(ClientFrameHandler(calls: calls))
                    }
                }
                .connect(host: host, port: port).get()
            // Two calls may race to connect; keep one connection, close the other.
            let winner = channel.withLock { current -> any Channel in
                if let c = current, c.isActive { return c }
                current = ch
                return ch
            }
            if winner !== ch { ch.close(promise: nil) }
            return winner
        } catch {
            throw RagError(.unavailable, "cannot connect to ragd at \(host):\(port): \(error)")
        }
    }

    func sslContext() throws(RagError) -> NIOSSLContext? {
        guard let tls else { return nil }
        if let c = tlsContext.withLock({ $0 }) { return c }
        let c = try tls.makeContext()
        tlsContext.withLock { $0 = c }
        return c
    }

    /// The client's own deadline error: the server did not answer at all (it may
    /// still complete the call), unlike a DEADLINE_EXCEEDED the server sends.
    public static let noAnswerMessage = "no answer from ragd within the deadline (the server may still complete the call)"

    func frame(_ method: RagMethod, _ id: UInt64, payload: Data, timeout: Duration?) -> Ragd_V1_Frame {
        var f = Ragd_V1_Frame()
        f.callID = id
        f.method = method.rawValue
        f.kind = .request
        f.payload = payload
        if let apiKey { f.metadata.apiKey = apiKey }
        Self.addTraceContext(to: &f.metadata)
        if let t = timeout ?? defaultTimeout {
            f.metadata.deadlineMs = UInt64(max(1, t.inMilliseconds))
        }
        return f
    }

    func send(_ f: Ragd_V1_Frame, on ch: any Channel) throws(RagError) {
        let buffer: ByteBuffer
        do { buffer = try FrameCodec.encode(f, allocator: ch.allocator) } catch { throw RagError(.internal, "cannot encode request: \(error)") }
        guard buffer.readableBytes - 4 <= maxFrameSize else {
            throw RagError(.resourceExhausted, "request of \(buffer.readableBytes - 4) bytes exceeds the frame limit of \(maxFrameSize) bytes; send smaller batches")
        }
        ch.writeAndFlush(buffer).whenFailure { [calls] error in
            calls.fail(f.callID, calls.refusal(of: ObjectIdentifier(ch)) ?? RagError(.unavailable, "cannot send to ragd: \(error)"))
        }
    }

    func cancel(_ id: UInt64, on ch: any Channel) {
        var f = Ragd_V1_Frame()
        f.callID = id
        f.kind = .cancel
        try? send(f, on: ch)
    }

    /// Sends one request and waits for its response payload.
    public func unary(_ method: RagMethod, payload: Data, timeout: Duration? = nil) async throws(RagError) -> Data {
        let ch = try await connection()
        let id = calls.makeID()
        let f = frame(method, id, payload: payload, timeout: timeout)
        let calls = self.calls
        // A client-side timer as well, in case the server never answers at all.
        let timer = (timeout ?? defaultTimeout).map { t in
            ch.eventLoop.scheduleTask(in: .microseconds(t.inMicroseconds) + .milliseconds(250)) {
                calls.fail(id, RagError(.deadlineExceeded, Self.noAnswerMessage))
            }
        }
        defer { timer?.cancel() }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Data, any Error>) in
                    calls.add(id, .unary(c), connection: ObjectIdentifier(ch))
                    do { try self.send(f, on: ch) } catch { calls.fail(id, RagError(from: error)) }
                }
            } onCancel: {
                if calls.contains(id) {
                    self.cancel(id, on: ch)
                    calls.fail(id, RagError(.cancelled, "the call was cancelled by the client"))
                }
            }
        } catch {
            throw RagError(from: error)
        }
    }

    /// Sends one request and returns the stream of response messages.
    /// Stopping iteration early cancels the call on the server.
    public func streaming(_ method: RagMethod, payload: Data, timeout: Duration? = nil) async throws(RagError) -> AsyncThrowingStream<Data, any Error> {
        let ch = try await connection()
        let id = calls.makeID()
        let f = frame(method, id, payload: payload, timeout: timeout)
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Data.self)
        let calls = self.calls
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason, calls.remove(id) != nil { self?.cancel(id, on: ch) }
        }
        calls.add(id, .stream(continuation), connection: ObjectIdentifier(ch))
        try send(f, on: ch)
        return stream
    }
}
