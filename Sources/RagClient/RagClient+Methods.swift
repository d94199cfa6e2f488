import Foundation
import RagCore
import RagWire
import SwiftProtobuf

public typealias QueryResponse = Ragd_V1_QueryResponse
public typealias IndexResponse = Ragd_V1_IndexResponse
public typealias StatsResponse = Ragd_V1_StatsResponse
public typealias HealthResponse = Ragd_V1_HealthResponse
public typealias DeleteResponse = Ragd_V1_DeleteResponse
public typealias StreamEvent = Ragd_V1_StreamEvent
public typealias CollectionStats = Ragd_V1_CollectionStats

extension RagClient {
    /// One unary call with typed request and response messages.
    public func call<Req: SwiftProtobuf.Message, Resp: SwiftProtobuf.Message>(
        _ method: RagMethod, _ request: Req, as: Resp.Type, timeout: Duration?
    ) async throws(RagError) -> Resp {
        let data = try await unary(method, payload: try FrameCodec.bytes(request), timeout: timeout)
        do { return try Resp(serializedBytes: data) } catch { throw RagError(.internal, "server sent an invalid \(Resp.protoMessageName)") }
    }

    static func queryRequest(collection: String, query: String, topK: Int?, filter: MetadataFilter?, mode: SearchMode?, userID: String, noCache: Bool, allowPartial: Bool = false) -> Ragd_V1_QueryRequest {
        var r = Ragd_V1_QueryRequest()
        r.collection = collection
        r.query = query
        if let topK { r.topK = UInt32(clamping: topK) }
        if let filter { r.filter = filter.wire }
        if let mode { r.mode = mode.wire }
        r.userID = userID
        r.noCache = noCache
        r.allowPartial = allowPartial
        return r
    }

    /// Retrieves the top `topK` chunks and an answer citing them.
    public func query(
        _ query: String, collection: String, topK: Int? = nil, filter: MetadataFilter? = nil, mode: SearchMode? = nil,
        userID: String = "", noCache: Bool = false, allowPartial: Bool = false, rerank: Ragd_V1_Rerank? = nil, timeout: Duration? = nil
    ) async throws(RagError) -> QueryResponse {
        var r = Self.queryRequest(collection: collection, query: query, topK: topK, filter: filter, mode: mode, userID: userID,
                                  noCache: noCache, allowPartial: allowPartial)
        if let rerank { r.rerank = rerank }
        return try await call(.query, r,
                       as: QueryResponse.self, timeout: timeout)
    }

    /// Like `query`, but the answer arrives as it is produced: a sources event,
    /// then tokens, then a done event with timings.
    public func stream(
        _ query: String, collection: String, topK: Int? = nil, filter: MetadataFilter? = nil, mode: SearchMode? = nil,
        userID: String = "", timeout: Duration? = nil
    ) async throws(RagError) -> AsyncThrowingStream<StreamEvent, any Error> {
        let raw = try await streaming(.stream, payload: try FrameCodec.bytes(
            Self.queryRequest(collection: collection, query: query, topK: topK, filter: filter, mode: mode, userID: userID, noCache: false)), timeout: timeout)
        let (events, continuation) = AsyncThrowingStream.makeStream(of: StreamEvent.self)
        let task = Task {
            do {
                for try await data in raw { continuation.yield(try StreamEvent(serializedBytes: data)) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: RagError(from: error))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return events
    }

    /// Indexes documents (chunk size/overlap 0: the server's defaults). `index`:
    /// the vector index of a collection this call creates (`exact`, `int8`,
    /// `hnsw`, `auto`; "": the server's).
    public func index(
        _ documents: [RagDocument], collection: String, chunkSize: Int = 0, chunkOverlap: Int = 0, index: String = "", timeout: Duration? = nil
    ) async throws(RagError) -> IndexResponse {
        try await call(.index, Self.indexRequest(documents.map(\.wire), collection: collection, chunkSize: chunkSize, chunkOverlap: chunkOverlap,
                                                 index: index),
                       as: IndexResponse.self, timeout: timeout)
    }

    static func indexRequest(_ documents: [Ragd_V1_Document], collection: String, chunkSize: Int, chunkOverlap: Int,
                             index: String = "") -> Ragd_V1_IndexRequest {
        .with {
            $0.collection = collection
            $0.chunkSize = UInt32(clamping: chunkSize)
            $0.chunkOverlap = UInt32(clamping: chunkOverlap)
            $0.index = index
            $0.documents = documents
        }
    }

    /// Indexes with progress: progress events after each committed batch, then the totals.
    public func indexStream(
        _ documents: [RagDocument], collection: String, chunkSize: Int = 0, chunkOverlap: Int = 0, index: String = "", timeout: Duration? = nil
    ) async throws(RagError) -> AsyncThrowingStream<Ragd_V1_IndexEvent, any Error> {
        let r = Self.indexRequest(documents.map(\.wire), collection: collection, chunkSize: chunkSize, chunkOverlap: chunkOverlap, index: index)
        let raw = try await streaming(.indexStream, payload: try FrameCodec.bytes(r), timeout: timeout)
        let (events, continuation) = AsyncThrowingStream.makeStream(of: Ragd_V1_IndexEvent.self)
        let task = Task {
            do {
                for try await data in raw { continuation.yield(try Ragd_V1_IndexEvent(serializedBytes: data)) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: RagError(from: error))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return events
    }

    public func delete(_ documentIDs: [String], collection: String, timeout: Duration? = nil) async throws(RagError) -> DeleteResponse {
        var r = Ragd_V1_DeleteRequest()
        r.collection = collection
        r.documentIds = documentIDs
        return try await call(.delete, r, as: DeleteResponse.self, timeout: timeout)
    }

    public func stats(collection: String = "", timeout: Duration? = nil) async throws(RagError) -> StatsResponse {
        var r = Ragd_V1_StatsRequest()
        r.collection = collection
        return try await call(.stats, r, as: StatsResponse.self, timeout: timeout)
    }

    public func health(timeout: Duration? = nil) async throws(RagError) -> HealthResponse {
        try await call(.health, Ragd_V1_HealthRequest(), as: HealthResponse.self, timeout: timeout)
    }

    /// Invalidates cached answers of one collection, or of all when `collection` is empty.
    public func clearCache(collection: String = "", timeout: Duration? = nil) async throws(RagError) {
        var r = Ragd_V1_ClearCacheRequest()
        r.collection = collection
        _ = try await call(.clearCache, r, as: Ragd_V1_ClearCacheResponse.self, timeout: timeout)
    }

    public func listCollections(timeout: Duration? = nil) async throws(RagError) -> [CollectionStats] {
        try await call(.listCollections, Ragd_V1_ListCollectionsRequest(), as: Ragd_V1_ListCollectionsResponse.self, timeout: timeout).collections
    }
}
public typealias Rerank = Ragd_V1_Rerank
