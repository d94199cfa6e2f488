import Logging
import NIOCore
import RagCore
import RagWire

/// Serves one client connection: reads frames, starts a task per call; each
/// call writes its frames to the channel whole, so frames never interleave.
struct ConnectionHandler: Sendable {
    let dispatcher: Dispatcher
    let stats: ServerStats
    let budget: ConnectionBudget
    let logger: Logger

    func run(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, state: ConnectionState, shutdown: ShutdownSignal) async {
        stats.connectionOpened()
        defer { stats.connectionClosed() }
        let calls = state.calls
        let output = state.output
        let allocator = channel.channel.allocator
        let token = shutdown.register { channel.channel.close(mode: .input, promise: nil) }
        defer { shutdown.unregister(token) }
        do {
            try await withTaskCancellationHandler {
            try await channel.executeThenClose { inbound, outbound in
                // Every answer takes its bytes from the connection's output budget first:
                // a client that does not read makes its calls wait here, not the heap grow.
                // The calling task hands its frame to the channel itself, one whole frame
                // per write (frames never interleave; one task's frames stay in order), and
                // does not wait for it: no writer task to wake per answer. Not through
                // `outbound`: a cancelled task could not write there, and a cancelled
                // call's last frame is its ERROR CANCELLED.
                let send: @Sendable (Ragd_V1_Frame) async -> Void = { frame in
                    guard let buffer = try? FrameCodec.encode(frame, allocator: allocator) else { return }
                    let n = buffer.readableBytes
                    guard (try? await output.reserve(n)) != nil else { return }
                    channel.channel.writeAndFlush(buffer).whenComplete { _ in output.release(n) }
                }
                _ = outbound
                let rejected = await { () async -> Bool in
                    var rejected = false
                    do {
                        for try await body in inbound {
                            // Backpressure: no new request while this client's answers pile up.
                            try await output.waitUntilBelowLimit()
                            await handle(body, calls: calls, send: send)
                        }
                        if !shutdown.isTriggered {
                            // The client hung up (we are not draining): nobody will read
                            // these answers, so their work stops now.
                            calls.cancelAll()
                        }
                        // Draining: let calls in flight finish.
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
                    return rejected
                }()
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
        output.close()
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
            let limits = budget.limits
            guard calls.count < limits.maxCallsPerConnection else {
                await send(.error(callID: frame.callID, method: frame.method, RagError(
                    .resourceExhausted, "\(limits.maxCallsPerConnection) calls are already in flight on this connection; wait for some to finish")))
                return
            }
            guard budget.admitCall() else {
                await send(.error(callID: frame.callID, method: frame.method, RagError(
                    .resourceExhausted, "the server has \(limits.maxCallsPerServer) calls in flight; try again shortly")))
                return
            }
            let dispatcher = self.dispatcher
            let stats = self.stats
            let budget = self.budget
            let started = calls.start(frame.callID) {
                stats.callStarted()
                defer { stats.callEnded(); budget.callEnded() }
                await dispatcher.handle(frame, receivedAt: receivedAt, send: send)
            }
            if !started {
                budget.callEnded()
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
