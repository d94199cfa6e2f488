import Foundation
import NIOCore
import NIOEmbedded
import NIOTestUtils
import RagCore
import RagWire
import Testing

@Suite struct FrameDecoderTests {
    func framed(_ body: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(UInt32(body.count))
        b.writeBytes(body)
        return b
    }

    @Test func splitAndCoalescedFramesDecode() throws {
        // The verifier feeds the input byte by byte, all at once, and in odd splits.
        let bodies: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 1000), [42]]
        let pairs = bodies.map { (framed($0), [ByteBuffer(bytes: $0)]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder(maxFrameSize: 4096) }
    }

    @Test func zeroLengthFrameIsAFrame() throws {
        var decoder = FrameDecoder(maxFrameSize: 16)
        var input = framed([])
        let out = try decoder.decode(buffer: &input)
        #expect(out?.readableBytes == 0)
        #expect(input.readableBytes == 0)
    }

    @Test func maxSizeBoundary() throws {
        var decoder = FrameDecoder(maxFrameSize: 100)
        var exact = framed(Array(repeating: 1, count: 100))
        #expect(try decoder.decode(buffer: &exact)?.readableBytes == 100)
        var over = framed(Array(repeating: 1, count: 101))
        #expect(throws: RagError.self) { try decoder.decode(buffer: &over) }
    }

    @Test func oversizePrefixFailsBeforeTheBodyArrives() throws {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        var header = ByteBuffer()
        header.writeInteger(UInt32.max)  // only the 4-byte prefix, no body
        do {
            _ = try decoder.decode(buffer: &header)
            Issue.record("expected an error")
        } catch let e as RagError {
            #expect(e.code == .resourceExhausted)
        }
    }

    @Test func partialHeaderWaits() throws {
        var decoder = FrameDecoder()
        var b = ByteBuffer(bytes: [0, 0])
        #expect(try decoder.decode(buffer: &b) == nil)
        #expect(b.readableBytes == 2)
    }

    @Test func garbageIsNotAFrame() throws {
        // 0xFF... is not a valid protobuf encoding (truncated varint / bad tag).
        let garbage = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(throws: RagError.self) { try FrameCodec.decode(garbage) }
        do { _ = try FrameCodec.decode(garbage) } catch { #expect(error.code == .invalidArgument) }
    }

    @Test func frameRoundTrip() throws {
        var f = Ragd_V1_Frame()
        f.callID = 77
        f.method = "Query"
        f.kind = .request
        f.metadata.deadlineMs = 1500
        f.payload = Data([1, 2, 3])
        var encoded = try FrameCodec.encode(f)
        #expect(encoded.getInteger(at: 0, as: UInt32.self) == UInt32(encoded.readableBytes - 4))
        var decoder = FrameDecoder()
        let body = try #require(try decoder.decode(buffer: &encoded))
        #expect(try FrameCodec.decode(body) == f)
    }

    @Test func statusCodesMatchGRPCNumbers() {
        #expect(RagError.Code.invalidArgument.wire == .invalidArgument)
        #expect(RagError.Code.invalidArgument.rawValue == 3)
        #expect(RagError.Code.unauthenticated.rawValue == 16)
        for raw in 0...16 {
            let code = RagError.Code(rawValue: raw)!
            #expect(RagError.Code(code.wire) == code)
            #expect(code.wire.rawValue == raw)
        }
    }

    @Test func filterRoundTripsThroughTheWire() throws {
        let f = try FilterExpression.parse("lang = en and (year >= 2020 or not draft = true) and tag in [a, 'b c']")
        #expect(try MetadataFilter(wire: f.wire) == f)
    }

    @Test func malformedWireFiltersAreRejected() {
        var empty = Ragd_V1_Filter()
        #expect(throws: RagError.self) { try MetadataFilter(wire: empty) }
        empty.compare = Ragd_V1_Comparison.with { $0.key = "x"; $0.op = .lt }  // no value
        #expect(throws: RagError.self) { try MetadataFilter(wire: empty) }
        empty.compare = Ragd_V1_Comparison.with { $0.key = ""; $0.op = .exists }
        #expect(throws: RagError.self) { try MetadataFilter(wire: empty) }
        empty.allOf = Ragd_V1_FilterList()
        #expect(throws: RagError.self) { try MetadataFilter(wire: empty) }
    }
}
