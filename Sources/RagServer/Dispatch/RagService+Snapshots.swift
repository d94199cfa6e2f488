import Foundation
import RagCore
import RagWire

// Snapshot RPCs (admin): domain calls on `SnapshotManager`, wire types here.
extension RagService {
    var snapshotHandlers: [String: RPCHandler] {
        [
            RagMethod.createSnapshot.rawValue: .unary { p, _ in try await createSnapshot(p) },
            RagMethod.listSnapshots.rawValue: .unary { p, _ in try listSnapshots(p) },
            RagMethod.deleteSnapshot.rawValue: .unary { p, _ in try deleteSnapshot(p) },
            RagMethod.readSnapshot.rawValue: .unary { p, _ in try readSnapshot(p) },
            RagMethod.uploadSnapshot.rawValue: .unary { p, _ in try uploadSnapshot(p) },
            RagMethod.restoreSnapshot.rawValue: .unary { p, _ in try await restoreSnapshot(p) },
        ]
    }

    func snapshotManager() throws(RagError) -> SnapshotManager {
        guard let snapshots else { throw .failedPrecondition("snapshots run on single servers; this node does not hold collections itself") }
        return snapshots
    }

    static func wire(_ m: SnapshotManifest) -> Ragd_V1_SnapshotInfo {
        .with {
            $0.name = m.name
            $0.collection = m.collection
            $0.embedder = m.embedder
            $0.dimension = UInt32(m.dimension)
            $0.partitions = UInt32(m.partitions)
            $0.documents = UInt64(m.documents)
            $0.chunks = UInt64(m.chunks)
            $0.bytes = UInt64(m.bytes)
            $0.createdAt = m.createdAt
        }
    }

    func createSnapshot(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_CreateSnapshotRequest.self, from: payload)
        let start = ContinuousClock.now
        let m = try await snapshotManager().create(collection: r.collection)
        return try FrameCodec.bytes(Ragd_V1_CreateSnapshotResponse.with { $0.snapshot = Self.wire(m); $0.seconds = start.elapsedSeconds })
    }

    func listSnapshots(_ payload: Data) throws -> Data {
        _ = try FrameCodec.payload(Ragd_V1_ListSnapshotsRequest.self, from: payload)
        return try FrameCodec.bytes(Ragd_V1_ListSnapshotsResponse.with { $0.snapshots = try snapshotManager().list().map(Self.wire) })
    }

    func deleteSnapshot(_ payload: Data) throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_DeleteSnapshotRequest.self, from: payload)
        try snapshotManager().delete(name: r.name)
        return try FrameCodec.bytes(Ragd_V1_DeleteSnapshotResponse())
    }

    func readSnapshot(_ payload: Data) throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ReadSnapshotRequest.self, from: payload)
        let (data, total) = try snapshotManager().read(name: r.name, offset: r.offset, length: Int(r.length == 0 ? UInt32(SnapshotManager.maxPart) : r.length))
        return try FrameCodec.bytes(Ragd_V1_ReadSnapshotResponse.with { $0.data = data; $0.total = total })
    }

    func uploadSnapshot(_ payload: Data) throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_UploadSnapshotRequest.self, from: payload)
        let m = try snapshotManager().upload(name: r.name, offset: r.offset, data: r.data, last: r.last)
        return try FrameCodec.bytes(Ragd_V1_UploadSnapshotResponse.with { if let m { $0.snapshot = Self.wire(m) } })
    }

    func restoreSnapshot(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_RestoreSnapshotRequest.self, from: payload)
        let start = ContinuousClock.now
        let (collection, documents, chunks) = try await snapshotManager().restore(name: r.name, into: r.collection)
        return try FrameCodec.bytes(Ragd_V1_RestoreSnapshotResponse.with {
            $0.collection = collection
            $0.documents = UInt64(documents)
            $0.chunks = UInt64(chunks)
            $0.seconds = start.elapsedSeconds
        })
    }
}
