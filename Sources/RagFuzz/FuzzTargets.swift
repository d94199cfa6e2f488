import Foundation
import NIOCore
import RagCore
import RagEngine
import RagWire

/// What the fuzzer feeds: the first byte picks a target, the rest is its input.
/// Every target must end in a value or a `RagError`; a crash, a trap, a hang or
/// a sanitizer report is a bug.
enum FuzzTargets {
    static func run(_ bytes: [UInt8]) {
        guard let selector = bytes.first else { return }
        let input = Array(bytes.dropFirst())
        switch selector % 4 {
        case 0: frames(input)
        case 1: filterText(input)
        case 2: requests(input)
        default: chunks(input)
        }
    }

    /// The frame decoder over a byte stream cut at arbitrary points, then each frame's payload.
    static func frames(_ input: [UInt8]) {
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        var buffer = ByteBuffer()
        let cut = input.isEmpty ? 0 : Int(input[0]) % (input.count + 1)
        for piece in [input[..<cut], input[cut...]] {
            buffer.writeBytes(piece)
            while true {
                guard let body = try? decoder.decode(buffer: &buffer) else { break }
                guard let frame = try? FrameCodec.decode(body) else { continue }
                _ = Ragd_V1_Frame.error(callID: frame.callID, method: frame.method, RagError(.internal, frame.statusMessage))
                decodeRequest(method: frame.method, payload: frame.payload)
            }
        }
    }

    /// ragctl's human filter syntax, then the limits and the wire form of what it parsed.
    static func filterText(_ input: [UInt8]) {
        let text = String(decoding: input, as: UTF8.self)
        guard let filter = try? FilterExpression.parse(text) else { return }
        try? RequestLimits().check(filter)
        _ = filter.canonical
        _ = try? MetadataFilter(wire: filter.wire)
        _ = filter.matches(["topic": .string("web"), "year": .number(2004), "ok": .bool(true)])
    }

    /// Request payloads as the dispatcher decodes them, with their conversions and checks.
    static func requests(_ input: [UInt8]) {
        guard let method = input.first else { return }
        let names = ["Query", "Stream", "Index", "IndexStream", "Delete", "SubmitJob", "CreateExperiment", "ShardWrite", "ShardSearch"]
        decodeRequest(method: names[Int(method) % names.count], payload: Data(input.dropFirst()))
    }

    static func decodeRequest(method: String, payload: Data) {
        let limits = RequestLimits()
        switch method {
        case "Query", "Stream":
            guard let r = try? FrameCodec.payload(Ragd_V1_QueryRequest.self, from: payload) else { return }
            if r.hasFilter, let f = try? MetadataFilter(wire: r.filter) { try? limits.check(f); _ = f.canonical }
        case "Index", "IndexStream":
            guard let r = try? FrameCodec.payload(Ragd_V1_IndexRequest.self, from: payload) else { return }
            for d in r.documents {
                guard let doc = try? RagDocument(wire: d) else { continue }
                try? limits.check(doc)
                _ = RagDocument.normalizedID(doc.id)
            }
        case "Delete":
            guard let r = try? FrameCodec.payload(Ragd_V1_DeleteRequest.self, from: payload) else { return }
            _ = r.documentIds.map(RagDocument.normalizedID)
        case "SubmitJob":
            _ = try? FrameCodec.payload(Ragd_V1_SubmitJobRequest.self, from: payload)
        case "CreateExperiment":
            _ = try? FrameCodec.payload(Ragd_V1_CreateExperimentRequest.self, from: payload)
        case "ShardWrite":
            _ = try? FrameCodec.payload(Ragd_V1_ShardWriteRequest.self, from: payload)
        case "ShardSearch":
            guard let r = try? FrameCodec.payload(Ragd_V1_ShardSearchRequest.self, from: payload) else { return }
            if r.hasFilter { _ = try? MetadataFilter(wire: r.filter) }
        default:
            return
        }
    }

    /// The chunker on arbitrary text (grapheme clusters of any shape).
    static func chunks(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let size = 16 + Int(input[0]) * 4
        guard let chunker = try? Chunker(size: size, overlap: Int(input[1]) % (size / 2 + 1)) else { return }
        for c in chunker.chunks(String(decoding: input.dropFirst(2), as: UTF8.self)) {
            precondition(c.unicodeScalars.count <= size * Chunker.maxScalarsPerCharacter, "a chunk longer than its bound")
        }
    }
}
