import Foundation
import RagWire

extension RawConnection {
    /// The bytes of one REQUEST frame, as a hostile or hand-rolled client sends it.
    public static func request(_ id: UInt64, _ method: String, _ payload: Data = Data(), deadlineMs: UInt64 = 0) throws -> [UInt8] {
        var f = Ragd_V1_Frame()
        f.callID = id
        f.kind = .request
        f.method = method
        f.payload = payload
        f.metadata.deadlineMs = deadlineMs
        return Array(try FrameCodec.encode(f).readableBytesView)
    }
}
