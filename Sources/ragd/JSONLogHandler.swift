import Foundation
import Logging
import Synchronization

/// `--log-format json`: one JSON object per line on standard error, for log
/// shippers: time (RFC 3339, UTC), level, logger label, message, and every
/// metadata key (request.id, method, key.id, status, duration_ms, …).
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    static let lock = Mutex(())
    static let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        var fields: [String: String] = [:]
        for (k, v) in metadata { fields[k] = "\(v)" }
        for (k, v) in explicit ?? [:] { fields[k] = "\(v)" }
        fields["time"] = Self.time.format(Date())
        fields["level"] = level.rawValue
        fields["logger"] = label
        fields["message"] = message.description
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
        var line = data
        line.append(0x0A)
        Self.lock.withLock { _ in FileHandle.standardError.write(line) }
    }
}
