import Foundation
import NIOCore
import RagCore
import RagWire
import Synchronization

/// Calls waiting for frames, by call id. Shared by the client (which adds calls)
/// and the channel handler (which completes them), from any thread.
final class CallTable: Sendable {
    enum Waiter {
        case unary(CheckedContinuation<Data, any Error>)
        case stream(AsyncThrowingStream<Data, any Error>.Continuation)
    }

    struct Entry {
        var waiter: Waiter
        var connection: ObjectIdentifier
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    /// Why the server last refused a whole connection (an ERROR frame with call
    /// id 0), so a call that loses the race with that refusal hears the reason.
    private let refusal = Mutex<(connection: ObjectIdentifier, error: RagError)?>(nil)

    func refusal(of connection: ObjectIdentifier) -> RagError? {
        refusal.withLock { $0?.connection == connection ? $0?.error : nil }
    }
    private let nextID = Atomic<UInt64>(1)

    func makeID() -> UInt64 { nextID.wrappingAdd(1, ordering: .relaxed).oldValue }

    func add(_ id: UInt64, _ waiter: Waiter, connection: ObjectIdentifier) {
        entries.withLock { $0[id] = Entry(waiter: waiter, connection: connection) }
    }

    /// Routes one frame that arrived on `connection` to its call.
    func deliver(_ frame: Ragd_V1_Frame, from connection: ObjectIdentifier) {
        switch frame.kind {
        case .response:
            if case .unary(let c) = remove(frame.callID) { c.resume(returning: frame.payload) }
        case .streamMessage:
            let waiter = entries.withLock { $0[frame.callID]?.waiter }
            if case .stream(let c) = waiter { c.yield(frame.payload) }
        case .endOfStream:
            if case .stream(let c) = remove(frame.callID) { c.finish() }
        case .error:
            let error = RagError(RagError.Code(frame.status), frame.statusMessage,
                                 retryAfter: frame.metadata.retryAfterMs > 0 ? .milliseconds(Int64(clamping: frame.metadata.retryAfterMs)) : nil)
            if frame.callID == 0 {
                // A connection-level error: every call on that connection (and
                // only on it: a client may have replaced it since) fails with it.
                refusal.withLock { $0 = (connection, error) }
                failAll(error, connection: connection)
            } else {
                fail(frame.callID, error)
            }
        default:
            break
        }
    }

    @discardableResult
    func remove(_ id: UInt64) -> Waiter? {
        entries.withLock { $0.removeValue(forKey: id)?.waiter }
    }

    func fail(_ id: UInt64, _ error: RagError) {
        switch remove(id) {
        case .unary(let c): c.resume(throwing: error)
        case .stream(let c): c.finish(throwing: error)
        case nil: break
        }
    }

    func contains(_ id: UInt64) -> Bool { entries.withLock { $0[id] != nil } }

    /// Fails the calls of one connection (or all, when `connection` is nil).
    func failAll(_ error: RagError, connection: ObjectIdentifier? = nil) {
        let victims = entries.withLock { entries -> [Waiter] in
            let ids = entries.filter { connection == nil || $0.value.connection == connection }.map(\.key)
            return ids.compactMap { entries.removeValue(forKey: $0)?.waiter }
        }
        for w in victims {
            switch w {
            case .unary(let c): c.resume(throwing: error)
            case .stream(let c): c.finish(throwing: error)
            }
        }
    }
}

/// Decodes frames from the server and hands them to the call table.
final class ClientFrameHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let calls: CallTable

    init(calls: CallTable) { self.calls = calls }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let body = unwrapInboundIn(data)
        guard let frame = try? FrameCodec.decode(body) else {
            calls.failAll(RagError(.internal, "server sent a frame that is not valid protobuf"), connection: ObjectIdentifier(context.channel))
            context.close(promise: nil)
            return
        }
        calls.deliver(frame, from: ObjectIdentifier(context.channel))
        if frame.kind == .error, frame.callID == 0, frame.status == .resourceExhausted {
            // The server rejected a frame and is closing this connection.
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let id = ObjectIdentifier(context.channel)
        calls.failAll(calls.refusal(of: id) ?? RagError(.unavailable, "connection to the server was lost"), connection: id)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let e = (error as? RagError).map { $0.code == .unavailable ? $0 : RagError(.internal, "server sent a bad frame: \($0.message)") }
            ?? RagError(.unavailable, "connection error: \(error)")
        calls.failAll(e, connection: ObjectIdentifier(context.channel))
        context.close(promise: nil)
    }
}
