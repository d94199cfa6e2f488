import CZlib
import Foundation
import RagCore

/// A document's original text as kept beside its chunks (deflated), so that the
/// server can chunk and embed it again without the client. Format: the text's
/// UTF-8 length (4 bytes, little-endian), then a zlib stream.
public enum SourceText {
    /// Texts longer than this are refused when read back (a corrupt or hostile
    /// length cannot make the server allocate more); the request limits keep
    /// documents far below it.
    public static let maxBytes = 256 << 20

    public static func compress(_ text: String) -> Data {
        let input = Array(text.utf8)
        var length = UInt32(input.count).littleEndian
        var out = Data(bytes: &length, count: 4)
        var size = compressBound(uLong(input.count))
        var buffer = [UInt8](repeating: 0, count: Int(size))
        // Level 6, zlib's default: 4–5× on man pages at about 40 MB/s.
        guard compress2(&buffer, &size, input, uLong(input.count), 6) == Z_OK else { return Data() }
        out.append(buffer, count: Int(size))
        return out
    }

    public static func decompress(_ data: Data) throws(RagError) -> String {
        guard data.count >= 4 else { throw RagError(.dataLoss, "stored source text is truncated") }
        let length = Int(data.prefix(4).enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) })
        guard length <= maxBytes else { throw RagError(.dataLoss, "stored source text claims \(length) bytes") }
        var size = uLong(length)
        var out = [UInt8](repeating: 0, count: max(length, 1))
        let body = Array(data.dropFirst(4))
        guard uncompress(&out, &size, body, uLong(body.count)) == Z_OK, Int(size) == length else {
            throw RagError(.dataLoss, "stored source text does not inflate")
        }
        return String(decoding: out.prefix(length), as: UTF8.self)
    }
}
