import NIOCore
import NIOSSL
import NIOTLS
import RagCore
import RagWire

/// What a connection's guard (on its event loop) and its serving tasks share.
final class ConnectionState: Sendable {
    let calls = CallRegistry()
    let output: OutputBudget

    init(limits: ConnectionLimits) {
        output = OutputBudget(limit: limits.maxUnsentBytesPerConnection)
    }
}

/// Watches one connection's bytes below the frame decoder. It finds frame
/// boundaries itself (4-byte length, body) so it can
/// - close a client that started a frame and does not finish it within
///   `frameTimeout` (slow-loris),
/// - count the bytes of incomplete frames against the server-wide budget,
/// - close a connection idle for `idleTimeout` (no call in flight, no bytes),
/// - close a client whose answers have not drained for `slowReaderGrace`,
/// - on a TLS listener, close a client that does not finish its handshake
///   within `frameTimeout` (a slow-loris one level down).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let budget: ConnectionBudget
    let connection: ConnectionState
    let maxFrameSize: Int

    private var header: UInt32 = 0
    private var headerBytes = 0
    private var bodyRemaining = 0
    /// Bytes of the current incomplete frame, all counted in the budget.
    private var held = 0
    private var frameStarted: NIODeadline?
    private var lastActivity = NIODeadline.now()
    private var timer: RepeatedTask?
    private var closing = false
    /// An oversize length prefix was seen: the decoder refuses the connection, and
    /// what follows is not frames, so it is no longer parsed (or timed).
    private var poisoned = false
    /// When a TLS handshake began that has not completed yet.
    private var handshakeStarted: NIODeadline?

    init(budget: ConnectionBudget, connection: ConnectionState, maxFrameSize: Int, tls: Bool = false) {
        self.budget = budget
        self.connection = connection
        self.maxFrameSize = maxFrameSize
        if tls { handshakeStarted = .now() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent { handshakeStarted = nil }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(500), delay: .milliseconds(500)) { _ in
            handler.value.check(ctx.value)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        connection.output.close()
        context.fireChannelInactive()
    }

    /// Stops the timer and gives back what this connection held of the budget.
    private func stop() {
        timer?.cancel()
        timer = nil
        budget.releaseFrameBytes(held)
        held = 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lastActivity = .now()
        guard !poisoned else { return context.fireChannelRead(data) }
        var inFrame = held  // bytes of the frame in progress before this read
        buffer.withUnsafeReadableBytes { bytes in
            var i = 0
            while i < bytes.count {
                if bodyRemaining == 0 {
                    if headerBytes == 0 && frameStarted == nil { frameStarted = .now() }
                    header = header << 8 | UInt32(bytes[i])
                    headerBytes += 1
                    inFrame += 1
                    i += 1
                    if headerBytes == 4 {
                        bodyRemaining = Int(header)
                        if bodyRemaining > maxFrameSize {
                            poisoned = true  // the decoder refuses it and the connection closes
                            bodyRemaining = 0
                            completeFrame(&inFrame)
                            return
                        }
                        if bodyRemaining == 0 { completeFrame(&inFrame) }  // an empty frame is complete already
                    }
                    continue
                }
                let take = min(bodyRemaining, bytes.count - i)
                bodyRemaining -= take
                inFrame += take
                i += take
                if bodyRemaining == 0 { completeFrame(&inFrame) }
            }
        }
        if inFrame > held {
            guard budget.holdFrameBytes(inFrame - held) else {
                reject(context, RagError(.resourceExhausted, "the server holds too many incomplete requests; try again later"))
                return
            }
            held = inFrame
        }
        context.fireChannelRead(data)
    }

    private func completeFrame(_ inFrame: inout Int) {
        budget.releaseFrameBytes(held)
        held = 0
        inFrame = 0
        header = 0
        headerBytes = 0
        frameStarted = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        context.write(data, promise: promise)
    }

    private func check(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        let now = NIODeadline.now()
        let limits = budget.limits
        if let started = handshakeStarted, now - started > .nanoseconds(limits.frameTimeout.inNanoseconds) {
            // No frame can be sent before the handshake: just close.
            closing = true
            context.close(promise: nil)
        } else if let started = frameStarted, now - started > .nanoseconds(limits.frameTimeout.inNanoseconds) {
            reject(context, RagError(.deadlineExceeded, "a request frame was not completed within \(Int(limits.frameTimeout.inSeconds)) s"))
        } else if let stalled = connection.output.stalled(), stalled > limits.slowReaderGrace {
            // Its answers are not being read: nothing more can be sent, so just close.
            closing = true
            context.close(promise: nil)
        } else if connection.calls.count == 0, connection.output.queued == 0,
                  now - lastActivity > .nanoseconds(limits.idleTimeout.inNanoseconds) {
            closing = true
            context.close(promise: nil)
        }
    }

    /// Sends one connection-level ERROR frame, stops reading, and closes: the
    /// output side at once (so the peer sees the frame, then EOF) and the rest
    /// after a moment or when the peer hangs up.
    private func reject(_ context: ChannelHandlerContext, _ error: RagError) {
        guard !closing else { return }
        closing = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        budget.releaseFrameBytes(held)
        held = 0
        if let frame = try? FrameCodec.encode(.error(callID: 0, error), allocator: context.channel.allocator) {
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        }
        context.close(mode: .output, promise: nil)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }
}

extension Duration {
    var inNanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
