import Crypto
import Foundation
import RagCore

/// The POSIX tar (ustar) subset a snapshot needs: regular files, names under
/// 100 bytes, sizes under 8 GiB. Operators can list and unpack an archive with
/// `tar`; Ragd reads it back with its own checks.
enum TarArchive {
    static let block = 512

    /// Writes entries one after another into a file.
    final class Writer {
        let handle: FileHandle

        init(path: String) throws(RagError) {
            guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                throw RagError(.internal, "cannot create the snapshot archive")
            }
            handle = h
        }

        /// Adds `data` as the file `name`.
        func add(name: String, data: Data) throws {
            try handle.write(contentsOf: TarArchive.header(name: name, size: data.count))
            try handle.write(contentsOf: data)
            try pad(data.count)
        }

        /// Adds the file at `path` as `name`, streaming it; returns its SHA-256 (hex) and size.
        func add(name: String, file path: String) throws -> (sha256: String, bytes: Int) {
            guard let input = FileHandle(forReadingAtPath: path) else { throw RagError(.internal, "cannot read \(name) for the archive") }
            defer { try? input.close() }
            let size = Int((try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0)
            try handle.write(contentsOf: TarArchive.header(name: name, size: size))
            var hash = SHA256()
            var written = 0
            while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
                hash.update(data: chunk)
                try handle.write(contentsOf: chunk)
                written += chunk.count
            }
            guard written == size else { throw RagError(.internal, "\(name) changed while it was archived") }
            try pad(size)
            return (TarArchive.hex(hash.finalize()), size)
        }

        private func pad(_ size: Int) throws {
            let rest = (TarArchive.block - size % TarArchive.block) % TarArchive.block
            if rest > 0 { try handle.write(contentsOf: Data(count: rest)) }
        }

        /// Writes the end-of-archive marker and makes the file durable.
        func finish() throws {
            try handle.write(contentsOf: Data(count: 2 * TarArchive.block))
            try handle.synchronize()
            try handle.close()
        }
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    static func header(name: String, size: Int) throws -> Data {
        let nameBytes = Array(name.utf8)
        guard nameBytes.count < 100, size < 1 << 33 else { throw RagError(.internal, "\(name) does not fit a tar entry") }
        var h = [UInt8](repeating: 0, count: block)
        func put(_ s: String, at offset: Int) { for (i, b) in s.utf8.enumerated() { h[offset + i] = b } }
        h.replaceSubrange(0..<nameBytes.count, with: nameBytes)
        put("0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        put(String(format: "%011o", size), at: 124)
        put(String(format: "%011o", Int(Date().timeIntervalSince1970)), at: 136)
        put("        ", at: 148)
        h[156] = UInt8(ascii: "0")
        put("ustar", at: 257)
        put("00", at: 263)
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", sum), at: 148)
        h[154] = 0
        h[155] = UInt8(ascii: " ")
        return Data(h)
    }

    /// An entry found in an archive: where its bytes are.
    struct Entry {
        var name: String
        var offset: UInt64
        var size: Int
    }

    /// Lists the entries of an archive, checking every header. A damaged or
    /// truncated archive is DATA_LOSS.
    static func entries(of path: String) throws(RagError) -> [Entry] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw RagError(.notFound, "snapshot archive not found") }
        defer { try? handle.close() }
        let total = (try? handle.seekToEnd()) ?? 0
        var offset: UInt64 = 0
        var out: [Entry] = []
        while true {
            do { try handle.seek(toOffset: offset) } catch { throw damaged("cannot read at byte \(offset)") }
            guard let raw = try? handle.read(upToCount: block), raw.count == block else {
                throw damaged("the archive is truncated at byte \(offset) (no end-of-archive marker)")
            }
            let h = [UInt8](raw)
            if h.allSatisfy({ $0 == 0 }) { return out }
            let stored = octal(h[148..<156])
            var sum = 0
            for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard let stored, stored == sum, h[156] == UInt8(ascii: "0") || h[156] == 0 else {
                throw damaged("the tar header at byte \(offset) is damaged")
            }
            guard let size = octal(h[124..<136]) else { throw damaged("the tar header at byte \(offset) has no size") }
            let name = String(decoding: h[0..<100].prefix { $0 != 0 }, as: UTF8.self)
            let dataStart = offset + UInt64(block)
            guard dataStart + UInt64(size) <= total else { throw damaged("\(name) is truncated") }
            out.append(Entry(name: name, offset: dataStart, size: size))
            guard out.count <= 100_000 else { throw damaged("the archive lists too many entries") }
            offset = dataStart + UInt64((size + block - 1) / block * block)
        }
    }

    static func octal(_ bytes: ArraySlice<UInt8>) -> Int? {
        let digits = bytes.prefix { $0 != 0 && $0 != 32 }.drop { $0 == 32 }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= 48 && $0 <= 55 }) else { return nil }
        return Int(String(decoding: digits, as: UTF8.self), radix: 8)
    }

    /// Reads an entry's bytes (small entries: the manifest).
    static func read(_ e: Entry, from path: String, limit: Int) throws(RagError) -> Data {
        guard e.size <= limit else { throw damaged("\(e.name) is larger than \(limit) bytes") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw RagError(.notFound, "snapshot archive not found") }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: e.offset)
            let data = try handle.read(upToCount: e.size) ?? Data()
            guard data.count == e.size else { throw damaged("\(e.name) is truncated") }
            return data
        } catch let e as RagError { throw e } catch { throw damaged("cannot read \(e.name)") }
    }

    /// Copies an entry to `destination`, returning the SHA-256 (hex) of what was copied.
    static func extract(_ e: Entry, from path: String, to destination: String) throws(RagError) -> String {
        do {
            guard let input = FileHandle(forReadingAtPath: path) else { throw RagError(.notFound, "snapshot archive not found") }
            defer { try? input.close() }
            guard FileManager.default.createFile(atPath: destination, contents: nil), let output = FileHandle(forWritingAtPath: destination) else {
                throw RagError(.internal, "cannot write \(e.name) while restoring")
            }
            defer { try? output.close() }
            try input.seek(toOffset: e.offset)
            var hash = SHA256()
            var left = e.size
            while left > 0 {
                guard let chunk = try input.read(upToCount: min(left, 1 << 20)), !chunk.isEmpty else { throw damaged("\(e.name) is truncated") }
                hash.update(data: chunk)
                try output.write(contentsOf: chunk)
                left -= chunk.count
            }
            try output.synchronize()
            return hex(hash.finalize())
        } catch let e as RagError { throw e } catch { throw RagError(.internal, "cannot restore \(e.name): \(error.localizedDescription)") }
    }

    /// DATA_LOSS naming what failed in an archive the caller made or sent: the
    /// message names archive entries only, so the client sees it.
    static func damaged(_ what: String) -> RagError {
        RagError(.dataLoss, "snapshot archive is damaged: \(what)", messageIsForClient: true)
    }
}
