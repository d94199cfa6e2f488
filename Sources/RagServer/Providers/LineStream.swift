#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Foundation
import RagCore

/// Bridges URLSession data-delegate callbacks (Linux Foundation has no
/// `bytes(for:)`) to an AsyncThrowingStream of lines.
///
/// Every stream runs as a task of one shared session: a session per request
/// means a libcurl multi handle created and torn down per call, and that
/// teardown is where Linux FoundationNetworking has been known to close file
/// descriptors it no longer owns (swift-corelibs-foundation #3286, #4791),
/// which in a process full of NIO sockets can close one of those.
final class LineStream: @unchecked Sendable {
    let request: URLRequest
    let lines: AsyncThrowingStream<String, any Error>
    private let continuation: AsyncThrowingStream<String, any Error>.Continuation
    private let lock = NSLock()
    private var buffer = Data()
    private var status = 0
    private var errorBody = Data()
    private var started: CheckedContinuation<Void, any Error>?
    private var task: URLSessionDataTask?

    init(request: URLRequest) {
        self.request = request
        (lines, continuation) = AsyncThrowingStream.makeStream(of: String.self)
    }

    /// Resolves when response headers arrive with a 2xx status; throws HTTPStatus otherwise.
    func start() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                lock.withLock { started = c }
                let t = StreamingSession.shared.start(request, for: self)
                lock.withLock { task = t }
            }
        } onCancel: {
            self.cancel()
        }
        continuation.onTermination = { [weak self] _ in self?.lock.withLock { self?.task }?.cancel() }
    }

    /// Abandons the request (timeout or retry).
    func cancel() {
        lock.withLock { task }?.cancel()
        resumeStart(CancellationError())
        continuation.finish()
    }

    func resumeStart(_ error: (any Error)?) {
        let c = lock.withLock { () -> CheckedContinuation<Void, any Error>? in defer { started = nil }; return started }
        if let error { c?.resume(throwing: error) } else { c?.resume() }
    }

    func received(_ response: URLResponse) {
        let ok = lock.withLock { () -> Bool in
            status = (response as? HTTPURLResponse)?.statusCode ?? 0
            return (200...299).contains(status)
        }
        if ok { resumeStart(nil) }
    }

    func received(_ data: Data) {
        let out = lock.withLock { () -> [String] in
            guard (200...299).contains(status) else { errorBody.append(data); return [] }
            buffer.append(data)
            var lines: [String] = []
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                buffer.removeSubrange(buffer.startIndex...newline)
                if !line.isEmpty { lines.append(line) }
            }
            return lines
        }
        for l in out { continuation.yield(l) }
    }

    func completed(_ error: (any Error)?) {
        let (status, errorBody, rest) = lock.withLock { (self.status, self.errorBody, self.buffer) }
        if let error {
            resumeStart(error)
            continuation.finish(throwing: RagError(.unavailable, "provider stream broke: \(error.localizedDescription)"))
        } else if !(200...299).contains(status) {
            resumeStart(HTTPStatus(status: status, body: String(decoding: errorBody.prefix(200), as: UTF8.self)))
            continuation.finish()
        } else {
            let last = String(decoding: rest, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !last.isEmpty { continuation.yield(last) }
            resumeStart(nil)
            continuation.finish()
        }
    }
}

/// The one URLSession for streamed provider calls; routes each task's
/// delegate callbacks to its LineStream.
final class StreamingSession: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    static let shared = StreamingSession()
    private let lock = NSLock()
    private var streams: [Int: LineStream] = [:]
    private var session: URLSession!

    override init() {
        super.init()
        session = URLSession(configuration: .default, delegate: self, delegateQueue: nil)
    }

    func start(_ request: URLRequest, for stream: LineStream) -> URLSessionDataTask {
        let task = session.dataTask(with: request)
        lock.withLock { streams[task.taskIdentifier] = stream }
        task.resume()
        return task
    }

    private func stream(_ task: URLSessionTask) -> LineStream? { lock.withLock { streams[task.taskIdentifier] } }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        stream(dataTask)?.received(response)
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        stream(dataTask)?.received(data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let s = lock.withLock { streams.removeValue(forKey: task.taskIdentifier) }
        s?.completed(error)
    }
}
