import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a graph keeps its float vectors.
public enum VectorBacking: Sendable, Hashable {
    /// Anonymous memory (the process's heap).
    case memory
    /// A file in this directory, mapped into memory. Its pages belong to the
    /// page cache, not to the process: the kernel reads in the rows a query
    /// touches and may drop any of them when memory runs short, so a graph
    /// that walks int8 codes (`HNSWSettings.quantized`) holds only a quarter
    /// of its vectors' bytes in anonymous memory. The file is unlinked as soon
    /// as it is created: it is scratch space, gone with the process, and what
    /// a restart needs is in SQLite and the saved graph.
    case file(directory: String)
    /// A file named `<prefix>XXXXXX`, mapped as `file` is, and kept: a saved
    /// index image names it and the row count it holds, so a restart maps the
    /// rows again instead of copying them (`VectorRows(reopening:)`). The
    /// owner removes such files once no graph or image names them.
    case keptFile(prefix: String)
}

extension VectorBacking {
    /// Called (with the reason) whenever a graph's rows cannot be kept in a
    /// mapped file and move to memory: no file could be created, or no space
    /// could be reserved for it to grow. The server logs it: the process then
    /// holds those floats in anonymous memory, which a memory limit counts.
    public static let fallbackReport = Mutex<(@Sendable (String) -> Void)?>(nil)

    static func reportFallback(_ why: String) {
        let report = fallbackReport.withLock { $0 }
        report?(why)
    }
}

/// Rows of `dimension` floats behind one base pointer, appended at the end and
/// never moved otherwise. Growing may move the base (a new mapping), so like
/// every write to a graph it must not run beside a read.
final class VectorRows: @unchecked Sendable {
    let dimension: Int
    /// `.memory` once the rows had to leave their file.
    private(set) var backing: VectorBacking
    private(set) var count = 0
    private var capacity = 0
    private(set) var base: UnsafeMutablePointer<Float>?
    private var fd: Int32 = -1

    /// The file's path while it is a kept file (`VectorBacking.keptFile`).
    private(set) var path: String?

    /// Rows in `backing`. The file is made with the first row (a graph that
    /// stays empty, or is replaced by a saved one at once, leaves none); one
    /// that cannot be made leaves the rows in memory.
    init(dimension: Int, backing: VectorBacking) {
        self.dimension = dimension
        self.backing = backing
    }

    /// Makes the file `backing` asks for; false (and the rows in memory) if it cannot be made.
    private func makeFile() -> Bool {
        let template: String, kept: Bool
        switch backing {
        case .memory: return false
        case .file(let directory): (template, kept) = ("\(directory)/.vectors-XXXXXX", false)
        case .keptFile(let prefix): (template, kept) = (prefix + "XXXXXX", true)
        }
        var name = Array(template.utf8CString)
        let fd = name.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            VectorBacking.reportFallback("cannot create a vector file (\(String(cString: strerror(errno)))); a graph's float vectors are kept in memory")
            backing = .memory
            return false
        }
        let made = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        if kept { path = made } else { unlink(made) }
        self.fd = fd
        return true
    }

    /// The first `rows` rows of a kept file written before (the rest of it is
    /// free space, overwritten by the next appends); nil when the file is not
    /// there or too short.
    init?(dimension: Int, reopening path: String, rows: Int, backing: VectorBacking) {
        self.dimension = dimension
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        let rowBytes = dimension * MemoryLayout<Float>.stride
        let size = fstat(fd, &st) == 0 ? Int(st.st_size) : -1
        let capacity = size / rowBytes
        guard size >= rows * rowBytes, capacity > 0,
              let p = mmap(nil, capacity * rowBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            Glibc.close(fd)
            return nil
        }
        _ = madvise(p, capacity * rowBytes, MADV_RANDOM)
        self.fd = fd
        self.path = path
        self.backing = backing
        base = p.assumingMemoryBound(to: Float.self)
        self.capacity = capacity
        count = rows
    }

    /// A descriptor of the kept file for a flush from another thread (the
    /// rows may move to another mapping meanwhile; the file stays). -1 if none.
    func duplicateDescriptor() -> Int32 { path != nil && fd >= 0 ? dup(fd) : -1 }

    deinit { release() }

    private var rowBytes: Int { dimension * MemoryLayout<Float>.stride }

    /// Row `i`'s first float.
    @inline(__always)
    func row(_ i: Int) -> UnsafePointer<Float> { UnsafePointer(base! + i * dimension) }

    /// Appends one row (`dimension` floats).
    func append(_ v: UnsafeBufferPointer<Float>) {
        precondition(v.count == dimension)
        if count == capacity { grow(to: max(1_024, capacity * 3 / 2)) }
        (base! + count * dimension).update(from: v.baseAddress!, count: dimension)
        count += 1
    }

    /// Appends `rows` rows from bytes holding that many floats (any alignment).
    func append(raw: UnsafeRawBufferPointer, rows: Int) {
        precondition(raw.count == rows * rowBytes)
        guard rows > 0 else { return }
        if count + rows > capacity { grow(to: max(count + rows, capacity * 3 / 2)) }
        UnsafeMutableRawPointer(base! + count * dimension).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
        count += rows
    }

    /// Every row as one array (for saving a graph).
    func withContiguousFloats<T>(_ body: (UnsafeBufferPointer<Float>) -> T) -> T {
        body(UnsafeBufferPointer(start: base.map { UnsafePointer($0) }, count: count * dimension))
    }

    private func grow(to rows: Int) {
        let bytes = rows * rowBytes
        if base == nil, fd < 0, backing != .memory { _ = makeFile() }
        if fd >= 0 {
            // A larger file and a new mapping of all of it; the old mapping goes.
            // Blocks reserved now (posix_fallocate, not a sparse ftruncate): a write
            // through the mapping into a hole of a full disk would be a SIGBUS.
            // It returns the error (not -1 and errno); a signal may interrupt it.
            var reserved = posix_fallocate(fd, 0, off_t(bytes))
            while reserved == EINTR { reserved = posix_fallocate(fd, 0, off_t(bytes)) }
            if reserved == 0,
               let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED {
                if let old = base { munmap(old, capacity * rowBytes) }
                // Rows are read one at a time, in no order: no read-ahead around a
                // fault (it would fill the cache with neighbours nobody asked for).
                _ = madvise(p, bytes, MADV_RANDOM)
                base = p.assumingMemoryBound(to: Float.self)
                capacity = rows
                return
            }
            // No space or no mapping: the rows move to memory for good.
            let why = reserved != 0 ? "cannot reserve \(bytes >> 20) MiB for a vector file (\(String(cString: strerror(reserved))))"
                                    : "cannot map a vector file (\(String(cString: strerror(errno))))"
            VectorBacking.reportFallback(why + "; a graph's \(count) float vectors move to memory")
            let copy = UnsafeMutablePointer<Float>.allocate(capacity: rows * dimension)
            if let old = base {
                copy.update(from: old, count: count * dimension)
                munmap(old, capacity * rowBytes)
            }
            close(fd)
            fd = -1
            // A kept file no longer takes new rows: the next image holds them
            // itself (an older image may still name the file's first rows).
            path = nil
            backing = .memory
            base = copy
            capacity = rows
            return
        }
        let grown = UnsafeMutablePointer<Float>.allocate(capacity: rows * dimension)
        if let old = base {
            grown.update(from: old, count: count * dimension)
            old.deallocate()
        }
        base = grown
        capacity = rows
    }

    /// Whether the rows are in a mapped file now (false after a fallback to memory).
    var isMapped: Bool { fd >= 0 }

    private func release() {
        guard let b = base else { if fd >= 0 { close(fd) }; return }
        if fd >= 0 {
            munmap(b, capacity * rowBytes)
            close(fd)
        } else {
            b.deallocate()
        }
        base = nil
    }
}
