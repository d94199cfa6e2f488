import RagCore

/// What a replica reports of its copy of a partition.
public struct ReplicaState: Sendable, Hashable {
    public var seq: UInt64
    public var version: UInt64
    public var firstLogged: UInt64
    public var digest: UInt64
    public var documents: Int
    public var chunks: Int
}

/// The refusals of the replication protocol, with markers the sender parses.
enum Replication {
    static let gapMarker = "sequence gap after "
    static let divergedMarker = "diverged: "

    /// The entry skips ahead of what this replica applied: send the missing ones first.
    static func gap(applied: UInt64, entry: UInt64) -> RagError {
        RagError(.aborted, "\(gapMarker)\(applied): this replica has applied up to \(applied), the entry is \(entry)")
    }

    /// The sequence applied here, when `error` is a gap refusal.
    static func gapApplied(_ error: RagError) -> UInt64? {
        guard error.code == .aborted, error.message.hasPrefix(gapMarker) else { return nil }
        return UInt64(error.message.dropFirst(gapMarker.count).prefix { $0.isNumber })
    }

    /// This replica applied a different entry at that number: it must be copied again.
    static func diverged(seq: UInt64, here: UInt64, entry: UInt64) -> RagError {
        RagError(.failedPrecondition, "\(divergedMarker)entry \(seq) here was ordered at placement version \(here), the sender's at \(entry)")
    }

    static let needsCopyMarker = "needs a copy: "

    /// The primary's log no longer reaches back to what a replica applied.
    static func needsCopy(_ why: String) -> RagError { RagError(.failedPrecondition, needsCopyMarker + why) }

    static func isDiverged(_ error: RagError) -> Bool {
        error.code == .failedPrecondition && error.message.hasPrefix(divergedMarker)
    }
}
