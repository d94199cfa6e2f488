import NIOCore
import RagCore

/// Splits a byte stream into frames: a 4-byte big-endian length, then that many
/// bytes. Checks the length before buffering the body, so an oversize prefix
/// fails at once instead of making us wait for (and hold) 4 GiB.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maxFrameSize: Int

    public init(maxFrameSize: Int = FrameCodec.defaultMaxFrameSize) {
        self.maxFrameSize = maxFrameSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= maxFrameSize else {
            throw RagError(.resourceExhausted, "frame of \(length) bytes exceeds the limit of \(maxFrameSize) bytes")
        }
        return buffer.readLengthPrefixedSlice(as: UInt32.self)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}
