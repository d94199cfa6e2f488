#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import RagCore

/// The process's file descriptors: a server that runs out of them must refuse
/// work (RESOURCE_EXHAUSTED), not crash — and libraries under us (Dispatch,
/// Foundation) trap when they cannot get one, so a reserve is kept for them.
public enum FileDescriptors {
    /// Descriptors kept free for SQLite, Dispatch, logging and provider calls.
    public static let reserve = 64

    /// Raises the soft RLIMIT_NOFILE to the hard limit (at most 1,048,576); returns the soft limit in force.
    @discardableResult
    public static func raiseSoftLimit() -> Int {
        var r = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return 1024 }
        let target = min(r.rlim_max, 1_048_576)
        if r.rlim_cur < target {
            var raised = r
            raised.rlim_cur = target
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return Int(target) }
        }
        return Int(r.rlim_cur)
    }

    public static var softLimit: Int {
        var r = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return 1024 }
        return Int(min(r.rlim_cur, 1 << 30))
    }

    /// Descriptors open now (entries of /proc/self/fd; on other systems, a probe).
    public static var open: Int {
        guard let dir = opendir("/proc/self/fd") else { return probe() }
        defer { closedir(dir) }
        var n = -1  // the directory's own descriptor
        while let entry = readdir(dir) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0.first ?? 0 }
            if first != UInt8(ascii: ".") { n += 1 }
        }
        return max(0, n)
    }

    /// The lowest free descriptor number, a lower bound of those open.
    static func probe() -> Int {
        let fd = dup(0)
        if fd >= 0 { close(fd) }
        return max(0, Int(fd))
    }

    /// Free descriptors beyond the reserve.
    public static var headroom: Int { softLimit - open - reserve }

    /// Throws RESOURCE_EXHAUSTED unless `needed` descriptors can be spared.
    public static func require(_ needed: Int, for what: String) throws(RagError) {
        guard headroom >= needed else {
            throw RagError(.resourceExhausted, "the server is short of file descriptors (limit \(softLimit)); cannot open \(what) now")
        }
    }
}
