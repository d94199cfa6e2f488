import Logging
import NIOCore
import RagCore
import RagWire

/// Serves one client connection: reads frames, starts a task per call, and
/// funnels every outgoing frame through one writer so frames never interleave.
struct ConnectionHandler: Sendable {
    let dispatcher: Dispatcher
    let stats: ServerStats
    let logger: Logger

    func run(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, shutdown: ShutdownSignal) async {
        stats.connectionOpened()
        defer { stats.connectionClosed() }
        let calls = CallRegistry()
        let (outgoing, output) = AsyncStream.makeStream(of: ByteBuffer.self)
        let allocator = channel.channel.allocator
        let send: @Sendable (Ragd_V1_Frame) async -> Void = { frame in
            if let buffer = try? FrameCodec.encode(frame, allocator: allocator) { output.yield(buffer) }
        }
        let token = shutdown.register { channel.channel.close(mode: .input, promise: nil) }
        defer { shutdown.unregister(token) }
        do {
            try await withTaskCancellationHandler {
            try await channel.executeThenClose { inbound, outbound in
                let rejected = try await withThrowingTaskGroup(of: Void.self) { group -> Bool in
                    group.addTask {
                        for await buffer in outgoing { try await outbound.write(buffer) }
                    }
                    var rejected = false
                    do {
                        for try await body in inbound {
                            await handle(body, calls: calls, send: send)
                        }
                        // Peer closed (or we are draining): let calls in flight finish.
                        await calls.drain()
                    } catch let e as RagError {
                        // Oversize length prefix: say why, then close without reading the body.
                        calls.cancelAll()
                        await send(.error(callID: 0, e))
                        await calls.drain()
                        rejected = true
                    } catch {
                        calls.cancelAll()
                        await calls.drain()
                    }
                    output.finish()
                    try await group.waitForAll()
                    return rejected
                }
                if rejected {
                    // Lingering close: send FIN after the error frame and give the peer
                    // a moment to read it and hang up. Closing at once, with its unread
                    // bytes in our receive buffer, would send an RST that can destroy
                    // the error frame before the peer reads it.
                    try? await channel.channel.close(mode: .output)
                    await withTaskGroup(of: Void.self) { race in
                        race.addTask { try? await channel.channel.closeFuture.get() }
                        race.addTask { try? await Task.sleep(for: .seconds(2)) }
                        await race.next()
                        race.cancelAll()
                    }
                }
            }
            } onCancel: {
                calls.cancelAll()
            }
        } catch {
            logger.debug("connection ended: \(error)")
        }
        calls.cancelAll()
    }

    func handle(_ body: ByteBuffer, calls: CallRegistry, send: @escaping @Sendable (Ragd_V1_Frame) async -> Void) async {
        let receivedAt = ContinuousClock.now
        let frame: Ragd_V1_Frame
        do {
            frame = try FrameCodec.decode(body)
        } catch {
            await send(.error(callID: 0, error))
            return
        }
        switch frame.kind {
        case .request:
            let dispatcher = self.dispatcher
            let stats = self.stats
            let started = calls.start(frame.callID) {
                stats.callStarted()
                defer { stats.callEnded() }
                await dispatcher.handle(frame, receivedAt: receivedAt, send: send)
            }
            if !started {
                await send(.error(callID: frame.callID, method: frame.method,
                                  RagError(.alreadyExists, "call id \(frame.callID) is already in flight on this connection")))
            }
        case .cancel:
            calls.cancel(frame.callID)
        default:
            await send(.error(callID: frame.callID, method: frame.method,
                              RagError(.invalidArgument, "a client may send REQUEST or CANCEL frames, not \(frame.kind)")))
        }
    }
}
