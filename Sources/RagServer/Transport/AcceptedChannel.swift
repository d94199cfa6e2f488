import NIOCore
import NIOSSL
import RagCore
import RagWire

/// Accepted connections travel from a listener to its serving loop as plain
/// channels with reading off, and become `NIOAsyncChannel`s only inside the
/// task that serves them. An `NIOAsyncChannel` made in the child-channel
/// initializer and then never served — accepted just as the listener closes,
/// still buffered when the accept loop ends — traps in `NIOAsyncWriter`'s
/// deinit and takes the whole process down (apple/swift-nio #2813, #2637).
/// A plain channel dropped that way is merely closed at exit.
enum AcceptedChannel {
    /// The child-channel initializer: reading off (no bytes arrive before the
    /// handlers do) and a latch for a half-close that comes before them.
    static func prepare(_ channel: any Channel) -> EventLoopFuture<any Channel> {
        channel.eventLoop.makeCompletedFuture {
            try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
            try channel.pipeline.syncOperations.addHandler(HalfCloseLatch())
            return channel
        }
    }

    /// Installs `configure`'s handlers and the async wrapper on the channel's
    /// event loop, replays an early half-close, then turns reading on.
    static func wrap<Inbound: Sendable, Outbound: Sendable>(
        _ channel: any Channel, as: NIOAsyncChannel<Inbound, Outbound>.Type,
        configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) async throws -> NIOAsyncChannel<Inbound, Outbound> {
        try await channel.eventLoop.submit {
            guard channel.isActive else { throw ChannelError.ioOnClosedChannel }
            let latch = try channel.pipeline.syncOperations.handler(type: HalfCloseLatch.self)
            try configure(channel.pipeline.syncOperations)
            let wrapped = try NIOAsyncChannel<Inbound, Outbound>(wrappingChannelSynchronously: channel)
            if latch.inputClosed { channel.pipeline.syncOperations.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
            try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
            return wrapped
        }.get()
    }
}

extension AcceptedChannel {
    /// Answers a connection the server cannot take with one ERROR frame, then
    /// closes it: a refused client learns why instead of hanging. Over TLS the
    /// frame goes after the handshake, which gets two seconds.
    static func refuse(_ channel: any Channel, tls: NIOSSLContext? = nil, _ error: RagError) async {
        if let tls {
            let ready: Void? = try? await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
            }.get()
            if ready == nil { try? await channel.close(); return }
            channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
        if let frame = try? FrameCodec.encode(.error(callID: 0, error), allocator: channel.allocator) {
            try? await channel.writeAndFlush(frame)
        }
        try? await channel.close(mode: .output)
        try? await channel.close()
    }
}

/// Remembers that the peer (or we) closed the input side before anyone was
/// listening, so `AcceptedChannel.wrap` can tell the handlers added later.
final class HalfCloseLatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private(set) var inputClosed = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed? = event as? ChannelEvent { inputClosed = true }
        context.fireUserInboundEventTriggered(event)
    }
}
