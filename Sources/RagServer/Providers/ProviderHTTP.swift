import Foundation
import Instrumentation
import Tracing
import Logging
import RagCore

/// The two wire formats model servers speak: OpenAI-compatible (OpenAI, vLLM,
/// llama.cpp, LM Studio, TEI's OpenAI route) and Ollama.
public enum ProviderFlavor: String, Sendable, Hashable { case openai, ollama }

/// JSON over HTTP for model providers (`OutboundHTTP`). Retries
/// 429, 5xx and connection errors with exponential backoff (and jitter); other
/// statuses fail at once. The API key is read from an environment variable at
/// call time and never logged or echoed in errors.
public struct ProviderHTTP: Sendable {
    public var baseURL: String
    public var apiKeyEnvironment: String?
    public var timeout: Duration
    public var retries: Int
    public var backoffBase: Duration

    public init(baseURL: String, apiKeyEnvironment: String? = nil, timeout: Duration = .seconds(30), retries: Int = 3,
                backoffBase: Duration = .milliseconds(200)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKeyEnvironment = apiKeyEnvironment
        self.timeout = timeout
        self.retries = retries
        self.backoffBase = backoffBase
    }

    var seconds: Double { timeout.inSeconds }

    /// The request's headers: the API key read from its environment variable now.
    /// The current trace context goes along, so a traced provider joins the trace.
    var headers: [(String, String)] {
        var out = TraceHeaders.current()
        guard let env = apiKeyEnvironment, let key = ProcessInfo.processInfo.environment[env], !key.isEmpty else { return out }
        out.append(("Authorization", "Bearer \(key)"))
        return out
    }

    /// A provider's error body can hold anything (an echo of the key, internal
    /// hosts): it goes to the server log, never into an answer.
    static func logBody(_ path: String, _ status: Int, _ body: String) {
        providerLog.warning("provider \(path) answered HTTP \(status): \(body.truncatedUTF8(maxBytes: 500))")
    }

    static func retryable(_ status: Int) -> Bool { status == 429 || (500...599).contains(status) }

    func backoff(_ attempt: Int) async throws {
        try await Task.sleep(for: .backoff(base: backoffBase, retry: attempt, jitter: 0.8...1.2))
    }

    /// POSTs `body`, returns the response body of a 2xx answer.
    public func post(_ path: String, body: Data) async throws -> Data {
        var last = ""
        for attempt in 0...retries {
            if attempt > 0 { try await backoff(attempt - 1) }
            do {
                let r = try await withSpan("POST \(path)", ofKind: .client) { span in
                    span.attributes["http.request.method"] = "POST"
                    span.attributes["url.full"] = baseURL + path
                    let r = try await OutboundHTTP.post(baseURL + path, body: body, headers: headers, timeout: timeout)
                    span.attributes["http.response.status_code"] = r.status
                    return r
                }
                if (200...299).contains(r.status) { return r.body }
                last = "HTTP \(r.status)"
                Self.logBody(path, r.status, String(decoding: r.body.prefix(500), as: UTF8.self))
                guard Self.retryable(r.status) else { throw RagError(.failedPrecondition, "provider \(path) answered \(last)") }
            } catch let e as RagError {
                throw e
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                last = RagError(from: error).message
            }
        }
        throw RagError(.unavailable, "provider \(path) failed after \(retries + 1) attempts: \(last)")
    }

    /// POSTs `body` and returns the response body line by line as it arrives
    /// (server-sent events or NDJSON). Retries only before the first byte.
    public func lines(_ path: String, body: Data) async throws -> AsyncThrowingStream<String, any Error> {
        var last = ""
        for attempt in 0...retries {
            if attempt > 0 { try await backoff(attempt - 1) }
            do {
                // The span covers the wait for the response head; the stream outlives it.
                return try await withSpan("POST \(path) (stream)", ofKind: .client) { span in
                    span.attributes["url.full"] = baseURL + path
                    return try await OutboundHTTP.lines(baseURL + path, body: body, headers: headers, timeout: timeout)
                }
            } catch let e as OutboundHTTP.Status {
                last = "HTTP \(e.status)"
                Self.logBody(path, e.status, e.body)
                guard Self.retryable(e.status) else { throw RagError(.failedPrecondition, "provider \(path) answered \(last)") }
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                last = RagError(from: error).message
            }
        }
        throw RagError(.unavailable, "provider \(path) failed after \(retries + 1) attempts: \(last)")
    }
}

let providerLog = Logger(label: "ragd.provider")

/// W3C trace context as HTTP headers, for calls to model providers.
enum TraceHeaders {
    struct Carrier: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) { carrier.append((key, value)) }
    }

    static func current() -> [(String, String)] {
        guard let context = ServiceContext.current else { return [] }
        var out: [(String, String)] = []
        InstrumentationSystem.instrument.inject(context, into: &out, using: Carrier())
        return out
    }
}
