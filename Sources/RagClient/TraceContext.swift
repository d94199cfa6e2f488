import Instrumentation
import RagWire
import ServiceContextModule

/// W3C trace context in frame metadata (`traceparent`, `tracestate`): the
/// carrier through which a tracer reads and writes it.
public struct FrameMetadataCarrier: Extractor, Injector {
    public typealias Carrier = Ragd_V1_Metadata

    public init() {}

    public func extract(key: String, from carrier: Ragd_V1_Metadata) -> String? {
        switch key.lowercased() {
        case "traceparent": carrier.traceparent.isEmpty ? nil : carrier.traceparent
        case "tracestate": carrier.tracestate.isEmpty ? nil : carrier.tracestate
        default: nil
        }
    }

    public func inject(_ value: String, forKey key: String, into carrier: inout Ragd_V1_Metadata) {
        switch key.lowercased() {
        case "traceparent": carrier.traceparent = value
        case "tracestate": carrier.tracestate = value
        default: break
        }
    }
}

extension RagClient {
    /// A trace context to send with every call made in this task, for callers
    /// that keep their own traces: `RagClient.$traceparent.withValue("00-…") { … }`.
    /// Without it, the current span's context is sent (when a tracer is bootstrapped).
    @TaskLocal public static var traceparent: String?

    /// Writes the trace context of this call into its metadata.
    static func addTraceContext(to metadata: inout Ragd_V1_Metadata) {
        if let tp = traceparent {
            metadata.traceparent = tp
        } else if let context = ServiceContext.current {
            InstrumentationSystem.instrument.inject(context, into: &metadata, using: FrameMetadataCarrier())
        }
    }
}
