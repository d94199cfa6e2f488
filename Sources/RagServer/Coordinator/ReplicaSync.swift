import Foundation
import RagClient
import RagCore
import RagWire
import SwiftProtobuf

/// Brings a replica's copy of one collection's partition forward from the
/// primary's replication log: used by writers (a replica that refused an entry
/// as a gap), by recovery and by partition moves.
enum ReplicaSync {
    /// Log bytes per read from the primary.
    static let pageBytes: UInt64 = 4 * 1024 * 1024

    /// Sends the primary's entries after `have` (through `upTo`, or to the
    /// primary's head) to `target`; returns the last one sent. Throws a
    /// "needs a copy" refusal when the log no longer holds them.
    @discardableResult
    static func fill(target: RagClient, primary: RagClient, key: Ragd_V1_ShardKey, after have: UInt64, upTo: UInt64? = nil,
                     timeout: Duration) async throws(RagError) -> UInt64 {
        var have = have
        while upTo.map({ have < $0 }) ?? true {
            let log = try await call(primary, .shardLog, Ragd_V1_ShardLogRequest.with { $0.shard = key; $0.after = have; $0.maxBytes = pageBytes },
                                     as: Ragd_V1_ShardLogResponse.self, timeout: timeout)
            if log.truncated { throw Replication.needsCopy("entries after \(have) of \(key.collection) are no longer in the primary's log") }
            guard !log.entries.isEmpty else { return have }
            for e in log.entries {
                if let upTo, e.seq > upTo { return have }
                var w: Ragd_V1_ShardWriteRequest
                do { w = try FrameCodec.payload(Ragd_V1_ShardWriteRequest.self, from: e.payload) } catch {
                    throw RagError(.dataLoss, "entry \(e.seq) of \(key.collection) in the primary's log cannot be read: \(error)")
                }
                w.shard = key
                w.seq = e.seq
                w.entryVersion = e.version
                _ = try await call(target, .shardWrite, w, as: Ragd_V1_ShardWriteResponse.self, timeout: timeout)
                have = e.seq
            }
        }
        return have
    }

    /// Sends one sequenced entry to `target`; when it refuses it as a gap,
    /// sends the missing entries from the primary's log first.
    static func forward(_ entry: Ragd_V1_ShardWriteRequest, to target: RagClient, primary: RagClient, timeout: Duration) async throws(RagError) -> Ragd_V1_ShardWriteResponse {
        var attempt = 0
        while true {
            do {
                return try await call(target, .shardWrite, entry, as: Ragd_V1_ShardWriteResponse.self, timeout: timeout)
            } catch {
                guard let have = Replication.gapApplied(error), attempt < 3 else { throw error }
                attempt += 1
                try await fill(target: target, primary: primary, key: entry.shard, after: have, upTo: entry.seq - 1, timeout: timeout)
            }
        }
    }

    /// Compares a replica's last entry with the primary's log: true when the
    /// replica's log is a prefix of the primary's (it can catch up by the log).
    static func isPrefix(target state: Ragd_V1_ShardCountsResponse, primary: RagClient, key: Ragd_V1_ShardKey, timeout: Duration) async throws(RagError) -> Bool {
        guard state.seq > 0 else { return true }
        let log = try await call(primary, .shardLog, Ragd_V1_ShardLogRequest.with { $0.shard = key; $0.after = state.seq - 1; $0.maxBytes = 1 },
                                 as: Ragd_V1_ShardLogResponse.self, timeout: timeout)
        if state.seq > log.head { return false }
        if state.seq == log.head { return state.seqVersion == log.headVersion }
        guard !log.truncated, let first = log.entries.first, first.seq == state.seq else { return false }
        return first.version == state.seqVersion
    }

    static func call<Resp: SwiftProtobuf.Message>(_ client: RagClient, _ method: RagMethod, _ request: some SwiftProtobuf.Message, as: Resp.Type,
                                                  timeout: Duration) async throws(RagError) -> Resp {
        do { return try await client.call(method, request, as: Resp.self, timeout: timeout) } catch { throw RagError(from: error) }
    }
}
