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
            // A TLS record (handshake 0x16 or alert 0x15, version 3.x) where a frame
            // should be: one side speaks TLS and the other does not.
            if length >> 24 == 0x16 || length >> 24 == 0x15, (length >> 16) & 0xFF == 0x03 {
                throw RagError(.unavailable, "the peer speaks TLS on a connection without it: enable TLS on both sides or on neither (ragctl --tls-ca, ragd --tls-cert)")
            }
            throw RagError(.resourceExhausted, "frame of \(length) bytes exceeds the limit of \(maxFrameSize) bytes")
        }
        return buffer.readLengthPrefixedSlice(as: UInt32.self)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}
