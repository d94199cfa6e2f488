import Foundation
import RagCore
import RagWire

/// Snapshots (admin, single servers): kept by the server, downloaded and
/// uploaded in parts of at most 4 MiB.
extension RagClient {
    public func createSnapshot(collection: String, timeout: Duration? = nil) async throws(RagError) -> Ragd_V1_CreateSnapshotResponse {
        try await call(.createSnapshot, Ragd_V1_CreateSnapshotRequest.with { $0.collection = collection }, as: Ragd_V1_CreateSnapshotResponse.self, timeout: timeout)
    }

    public func listSnapshots(timeout: Duration? = nil) async throws(RagError) -> [Ragd_V1_SnapshotInfo] {
        try await call(.listSnapshots, Ragd_V1_ListSnapshotsRequest(), as: Ragd_V1_ListSnapshotsResponse.self, timeout: timeout).snapshots
    }

    public func deleteSnapshot(_ name: String, timeout: Duration? = nil) async throws(RagError) {
        _ = try await call(.deleteSnapshot, Ragd_V1_DeleteSnapshotRequest.with { $0.name = name }, as: Ragd_V1_DeleteSnapshotResponse.self, timeout: timeout)
    }

    public func restoreSnapshot(_ name: String, into collection: String = "", timeout: Duration? = nil) async throws(RagError) -> Ragd_V1_RestoreSnapshotResponse {
        try await call(.restoreSnapshot, Ragd_V1_RestoreSnapshotRequest.with { $0.name = name; $0.collection = collection },
                       as: Ragd_V1_RestoreSnapshotResponse.self, timeout: timeout)
    }

    /// Copies snapshot `name` into the local file `path`; returns its size.
    public func downloadSnapshot(_ name: String, to path: String, timeout: Duration? = nil) async throws(RagError) -> UInt64 {
        guard FileManager.default.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else {
            throw .invalidArgument("cannot write \(path)")
        }
        defer { try? out.close() }
        var offset: UInt64 = 0
        while true {
            let r = try await call(.readSnapshot, Ragd_V1_ReadSnapshotRequest.with { $0.name = name; $0.offset = offset; $0.length = 4 << 20 },
                                   as: Ragd_V1_ReadSnapshotResponse.self, timeout: timeout)
            do { try out.write(contentsOf: r.data) } catch { throw RagError(.internal, "cannot write \(path): \(error.localizedDescription)") }
            offset += UInt64(r.data.count)
            if offset >= r.total || r.data.isEmpty { return offset }
        }
    }

    /// Uploads the local archive `path` as snapshot `name` (checked by the server at the end).
    public func uploadSnapshot(_ path: String, as name: String, timeout: Duration? = nil) async throws(RagError) -> Ragd_V1_SnapshotInfo {
        guard let input = FileHandle(forReadingAtPath: path) else { throw .invalidArgument("cannot read \(path)") }
        defer { try? input.close() }
        var offset: UInt64 = 0
        while true {
            let data: Data
            do { data = try input.read(upToCount: 4 << 20) ?? Data() } catch { throw .invalidArgument("cannot read \(path)") }
            let last = data.count < 4 << 20
            let r = try await call(.uploadSnapshot, Ragd_V1_UploadSnapshotRequest.with { $0.name = name; $0.offset = offset; $0.data = data; $0.last = last },
                                   as: Ragd_V1_UploadSnapshotResponse.self, timeout: timeout)
            offset += UInt64(data.count)
            if last { return r.snapshot }
        }
    }
}
