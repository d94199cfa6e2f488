import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// OpenTelemetry tracing, on only with `--otel-endpoint`: spans are exported
/// over OTLP/HTTP (protobuf) in batches. Off, the process keeps the no-op
/// tracer of swift-distributed-tracing, whose spans cost a few allocations.
enum RagdTracing {
    /// Bootstraps the tracer and returns the exporter's service, to run with the server.
    static func bootstrap(endpoint: String, serviceName: String, logger: Logger) throws -> any Service {
        var config = OTel.Configuration.default
        config.serviceName = serviceName
        config.metrics.enabled = false
        config.logs.enabled = false
        config.traces.sampler = .parentBasedAlwaysOn
        config.traces.exporter = .otlp
        config.traces.otlpExporter.protocol = .httpProtobuf
        config.traces.otlpExporter.endpoint = tracesURL(endpoint)
        // Spans reach the collector within a second, not the default five.
        config.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
        config.diagnosticLogger = .custom(logger)
        config.diagnosticLogLevel = .warning
        let (tracer, service) = try OTel.makeTracingBackend(configuration: config)
        InstrumentationSystem.bootstrap(tracer)
        logger.info("tracing: OTLP/HTTP to \(config.traces.otlpExporter.endpoint) as \(serviceName)")
        return service
    }

    /// A collector's base URL gets the traces path; a URL with a path is used as given.
    static func tracesURL(_ endpoint: String) -> String {
        guard let url = URL(string: endpoint), url.path.isEmpty || url.path == "/" else { return endpoint }
        return endpoint.hasSuffix("/") ? endpoint + "v1/traces" : endpoint + "/v1/traces"
    }
}
