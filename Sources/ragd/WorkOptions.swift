import ArgumentParser
import RagCore
import RagServer

/// Flags for jobs and indexing work: queue backend, worker counts, retries, lanes.
struct WorkOptions: ParsableArguments {
    @Option(help: "Job queue: sqlite (default, jobs.sqlite in the data directory) or redis (Redis Streams shared by several coordinators).") var jobs: String?
    @Option(name: .customLong("jobs-redis"), help: "Redis host:port for --jobs redis (default: --redis, else 127.0.0.1:6379).") var jobsRedis: String?
    @Option(name: .customLong("job-index-workers"), help: "Index jobs run at once (default 1).") var indexWorkers: Int?
    @Option(name: .customLong("job-query-workers"), help: "Query jobs run at once (default 2).") var queryWorkers: Int?
    @Option(name: .customLong("job-retries"), help: "Retries of a job after a retryable failure (default 3).") var retries: Int?
    @Option(name: .customLong("job-backoff-ms"), help: "First retry delay; doubles each retry, with ±25% jitter (default 2000).") var backoffMS: Int?
    @Option(name: .customLong("job-batch-size"), help: "Documents per batch in an index job; progress is saved after each (default 64).") var jobBatchSize: Int?
    @Option(name: .customLong("job-visibility-timeout"), help: "Seconds without a claim renewal before a running job goes to another worker (default 30).") var visibilityTimeout: Int?
    @Option(name: .customLong("job-retention-hours"), help: "Finished jobs are deleted this many hours after they finish (default 168).") var retentionHours: Int?
    @Option(name: .customLong("job-staging-timeout"), help: "Seconds an upload in parts may wait for its next part before the job is failed and its parts dropped (default 3600).") var stagingTimeout: Int?
    @Option(name: .customLong("worker-name"), help: "This worker's name in the job queue (default host/pid).") var workerName: String?
    @Option(name: .customLong("embed-batch-size"), help: "Chunks per embedder call while indexing (default 64).") var embedBatchSize: Int?
    @Option(name: .customLong("index-embed-workers"), help: "Embedding batches at once for indexing (default: cores).") var indexEmbedWorkers: Int?
    @Option(name: .customLong("query-embed-workers"), help: "Query embeddings at once, a separate lane (default: cores).") var queryEmbedWorkers: Int?

    /// `setting(flag, env, key)` resolves flag, then RAGD_* environment, then config file.
    func apply(to c: inout RagServerConfiguration, redisDefault: String?, setting: (String?, String, String) -> String?) throws {
        func int(_ flag: Int?, _ env: String, _ key: String, min: Int = 1) throws -> Int? {
            guard let s = setting(flag.map(String.init), env, key) else { return nil }
            guard let n = Int(s), n >= min else { throw ValidationError("\(key) must be an integer ≥ \(min), got \(s)") }
            return n
        }
        if let v = try int(indexWorkers, "RAGD_JOB_INDEX_WORKERS", "job-index-workers", min: 0) { c.jobs.indexWorkers = v }
        if let v = try int(queryWorkers, "RAGD_JOB_QUERY_WORKERS", "job-query-workers", min: 0) { c.jobs.queryWorkers = v }
        if let v = try int(retries, "RAGD_JOB_RETRIES", "job-retries", min: 0) { c.jobs.maxRetries = v }
        if let v = try int(backoffMS, "RAGD_JOB_BACKOFF_MS", "job-backoff-ms") { c.jobs.backoffBase = .milliseconds(v) }
        if let v = try int(jobBatchSize, "RAGD_JOB_BATCH_SIZE", "job-batch-size") { c.jobs.batchSize = v }
        if let v = try int(visibilityTimeout, "RAGD_JOB_VISIBILITY_TIMEOUT", "job-visibility-timeout") { c.jobs.visibilityTimeout = .seconds(v) }
        if let v = try int(retentionHours, "RAGD_JOB_RETENTION_HOURS", "job-retention-hours") { c.jobs.retention = .seconds(v * 3600) }
        if let v = try int(stagingTimeout, "RAGD_JOB_STAGING_TIMEOUT", "job-staging-timeout") { c.jobs.stagingTimeout = .seconds(v) }
        if let v = setting(workerName, "RAGD_WORKER_NAME", "worker-name") { c.jobs.workerName = v }
        if let v = try int(embedBatchSize, "RAGD_EMBED_BATCH_SIZE", "embed-batch-size") { c.embedBatchSize = v }
        if let v = try int(indexEmbedWorkers, "RAGD_INDEX_EMBED_WORKERS", "index-embed-workers") { c.indexEmbedWorkers = v }
        if let v = try int(queryEmbedWorkers, "RAGD_QUERY_EMBED_WORKERS", "query-embed-workers") { c.queryEmbedWorkers = v }
        switch setting(jobs, "RAGD_JOBS", "jobs")?.lowercased() {
        case nil, "sqlite": c.jobBackend = .sqlite
        case "redis":
            let (host, port) = try hostPort(setting(jobsRedis, "RAGD_JOBS_REDIS", "jobs-redis") ?? redisDefault ?? "127.0.0.1:6379", key: "jobs-redis")
            c.jobBackend = .redis(host: host, port: port)
        case let other?: throw ValidationError("jobs must be sqlite or redis, not \(other)")
        }
    }
}

/// "host:port" split at the last colon; a ValidationError naming `key` otherwise.
func hostPort(_ address: String, key: String) throws -> (String, Int) {
    guard let parsed = splitHostPort(address) else { throw ValidationError("\(key) must be host:port, got \(address)") }
    return parsed
}
