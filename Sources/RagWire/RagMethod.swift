/// The public methods, by their wire name (`Frame.method`).
public enum RagMethod: String, Sendable, CaseIterable {
    case query = "Query"
    case index = "Index"
    case stream = "Stream"
    case indexStream = "IndexStream"
    case stats = "Stats"
    case health = "Health"
    case delete = "Delete"
    case listCollections = "ListCollections"
    case clearCache = "ClearCache"
    case createExperiment = "CreateExperiment"
    case listExperiments = "ListExperiments"
    case stopExperiment = "StopExperiment"
    case experimentReport = "ExperimentReport"
    case feedback = "Feedback"
    case submitJob = "SubmitJob"
    case getJob = "GetJob"
    case listJobs = "ListJobs"
    case cancelJob = "CancelJob"
    case createKey = "CreateKey"
    case listKeys = "ListKeys"
    case revokeKey = "RevokeKey"
    case clusterStatus = "ClusterStatus"
    // Internal: coordinator -> shard.
    case shardSearch = "ShardSearch"
    case shardStats = "ShardStats"
    case shardWrite = "ShardWrite"
    case shardHashes = "ShardHashes"
    case shardCounts = "ShardCounts"
    case shardFetch = "ShardFetch"

    /// Methods that answer with stream messages and an end-of-stream frame.
    public var isStreaming: Bool { self == .stream || self == .indexStream }
}
