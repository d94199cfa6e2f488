import Foundation
import Logging
import NIOCore
import RagClient
import RagEngine
import RagServer
import ServiceLifecycle
import Synchronization

/// A fresh empty directory under the system temp directory.
public func makeTemporaryDirectory(_ prefix: String = "ragd-test") -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Runs `body` against a real in-process server listening on a free loopback
/// port, with its own temporary data directory, then shuts the server down
/// gracefully and removes the directory.
public func withRagServer<T: Sendable>(
    configure: (inout RagServerConfiguration) -> Void = { _ in },
    embedder: (any Embedder)? = nil,
    _ body: (RagClient, RagServer) async throws -> T
) async throws -> T {
    var configuration = RagServerConfiguration()
    configuration.port = 0
    configuration.dataDirectory = makeTemporaryDirectory()
    configuration.shutdownGracePeriod = .seconds(5)
    configuration.metricsPort = 0
    let temporary = configuration.dataDirectory
    configure(&configuration)
    defer { try? FileManager.default.removeItem(atPath: temporary) }

    var logger = Logger(label: "ragd-test")
    logger.logLevel = .warning
    let (addresses, addressContinuation) = AsyncStream.makeStream(of: SocketAddress.self)
    let server = try await RagServer(configuration: configuration, embedder: embedder, logger: logger) {
        if case .public(let a) = $0 { addressContinuation.yield(a) }
    }
    let group = ServiceGroup(configuration: .init(services: [server], logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var iterator = addresses.makeAsyncIterator()
        guard let address = await iterator.next(), let port = address.port else {
            throw CancellationError()
        }
        let client = RagClient(host: "127.0.0.1", port: port)
        do {
            let result = try await body(client, server)
            await client.close()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await client.close()
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}
