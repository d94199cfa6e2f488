import Foundation
import RagWire
import RagClient
import SwiftProtobuf

extension QueryResponse: SwiftProtobufMessageJSON {}
extension IndexResponse: SwiftProtobufMessageJSON {}
extension StatsResponse: SwiftProtobufMessageJSON {}
extension HealthResponse: SwiftProtobufMessageJSON {}
extension DeleteResponse: SwiftProtobufMessageJSON {}
extension Ragd_V1_ListCollectionsResponse: SwiftProtobufMessageJSON {}
extension Ragd_V1_Job: SwiftProtobufMessageJSON {}
extension Ragd_V1_ListJobsResponse: SwiftProtobufMessageJSON {}

extension SwiftProtobuf.Message {
    var jsonText: String {
        var options = JSONEncodingOptions()
        options.alwaysPrintInt64sAsNumbers = true
        options.preserveProtoFieldNames = true
        return (try? jsonString(options: options)) ?? "{}"
    }
}

func milliseconds(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }

/// A one-line progress bar on a terminal; plain lines every few seconds otherwise.
struct Progress {
    let total: Int
    let label: String
    let start = Date()
    let isTerminal = isatty(2) != 0
    var lastPlain = Date.distantPast

    init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    mutating func update(_ done: Int, extra: String = "") {
        let elapsed = max(Date().timeIntervalSince(start), 1e-6)
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        if isTerminal {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let line = String(format: "\r%@ %@ %d/%d %3.0f%%  %.0f %@/s  ETA %@ %@", label, bar, done, total, fraction * 100, rate, label, formatETA(eta), extra)
            FileHandle.standardError.write(Data(line.utf8))
            if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else if Date().timeIntervalSince(lastPlain) >= 2 || done >= total {
            lastPlain = Date()
            let line = String(format: "%@: %d/%d (%.0f%%), %.0f/s, ETA %@ %@\n", label, done, total, fraction * 100, rate, formatETA(eta), extra)
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    func formatETA(_ s: Double) -> String {
        let s = Int(s.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : (s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s")
    }
}
