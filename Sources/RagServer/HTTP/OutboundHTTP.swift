import AsyncHTTPClient
import Foundation
import NIOCore
import RagCore

/// Outbound HTTP (etcd's JSON gateway, model providers) on AsyncHTTPClient:
/// NIO event loops, pooled connections, a deadline on every call, and none of
/// Linux FoundationNetworking's failure modes: there, a connection that
/// closes before the response headers arrive crashes the whole process
/// (swift-corelibs-foundation #5285; seen here when an etcd member was
/// killed under a coordinator), and tearing down a session can close
/// descriptors it no longer owns (#3286, #4791).
enum OutboundHTTP {
    struct Response: Sendable {
        var status: Int
        var body: Data
    }

    /// A response whose status is not 2xx, with the start of its body (for the log only).
    struct Status: Error {
        var status: Int
        var body: String
    }

    static func request(_ url: String, body: Data, headers: [(String, String)]) -> HTTPClientRequest {
        var r = HTTPClientRequest(url: url)
        r.method = .POST
        r.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { r.headers.add(name: name, value: value) }
        r.body = .bytes(ByteBuffer(bytes: body))
        return r
    }

    static func amount(_ d: Duration) -> TimeAmount {
        let (s, atto) = d.components
        return .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }

    /// POSTs `body` as JSON; the status and at most `limit` bytes of the answer, all within `timeout`.
    static func post(_ url: String, body: Data, headers: [(String, String)] = [], timeout: Duration, limit: Int = 64 << 20) async throws -> Response {
        let deadline = NIODeadline.now() + amount(timeout)
        let response = try await HTTPClient.shared.execute(request(url, body: body, headers: headers), deadline: deadline)
        let bytes = try await response.body.collect(upTo: limit)
        return Response(status: Int(response.status.code), body: Data(bytes.readableBytesView))
    }

    /// POSTs `body` and returns the answer line by line as it arrives
    /// (server-sent events, NDJSON). `timeout` bounds the wait for the
    /// response's headers (a generation may stream for longer); a status
    /// other than 2xx throws `Status`.
    static func lines(_ url: String, body: Data, headers: [(String, String)] = [], timeout: Duration) async throws -> AsyncThrowingStream<String, any Error> {
        let req = request(url, body: body, headers: headers)
        let response: HTTPClientResponse? = try await withTimeout(timeout) {
            try await HTTPClient.shared.execute(req, deadline: .distantFuture)
        }
        guard let response else { throw RagError(.deadlineExceeded, "no answer within \(timeout)") }
        guard (200...299).contains(Int(response.status.code)) else {
            let start = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
            throw Status(status: Int(response.status.code), body: String(start.prefix(200)))
        }
        let (lines, continuation) = AsyncThrowingStream.makeStream(of: String.self)
        let pump = Task {
            var pending = Data()
            func flush(_ upTo: Data.Index) {
                let line = String(decoding: pending[pending.startIndex..<upTo], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if !line.isEmpty { continuation.yield(line) }
            }
            do {
                for try await chunk in response.body {
                    pending.append(contentsOf: chunk.readableBytesView)
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        flush(newline)
                        pending.removeSubrange(pending.startIndex...newline)
                    }
                }
                flush(pending.endIndex)
                continuation.finish()
            } catch {
                continuation.finish(throwing: RagError(.unavailable, "provider stream broke: \(RagError(from: error).message)"))
            }
        }
        continuation.onTermination = { _ in pump.cancel() }
        return lines
    }
}
