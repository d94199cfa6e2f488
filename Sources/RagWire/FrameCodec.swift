import NIOCore
import RagCore
import SwiftProtobuf

/// Encodes and decodes `Frame` messages and the payloads they carry.
public enum FrameCodec {
    public static let defaultMaxFrameSize = 16 * 1024 * 1024

    /// Length prefix + serialized frame, in one buffer (one write, one syscall).
    public static func encode(_ frame: Ragd_V1_Frame, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        let bytes: [UInt8] = try frame.serializedBytes()
        var buffer = allocator.buffer(capacity: 4 + bytes.count)
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }

    /// Parses one frame body (without its length prefix).
    public static func decode(_ body: ByteBuffer) throws(RagError) -> Ragd_V1_Frame {
        do {
            return try Ragd_V1_Frame(serializedBytes: body.readableBytesSpan)
        } catch {
            throw RagError(.invalidArgument, "frame is not a valid ragd.v1.Frame protobuf message (\(body.readableBytes) bytes)")
        }
    }

    /// Parses a method's payload, naming the message type in the error.
    public static func payload<M: SwiftProtobuf.Message>(_ type: M.Type, from bytes: Data) throws(RagError) -> M {
        do {
            return try M(serializedBytes: bytes)
        } catch {
            throw RagError(.invalidArgument, "payload is not a valid \(M.protoMessageName) message")
        }
    }

    public static func bytes(_ message: some SwiftProtobuf.Message) throws(RagError) -> Data {
        do { return try message.serializedData() } catch { throw RagError(.internal, "cannot serialize \(type(of: message)): \(error)") }
    }
}

import struct Foundation.Data
