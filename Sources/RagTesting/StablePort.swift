import Foundation
import Glibc
import Synchronization

/// Ports for processes that a test restarts on the same address, and for the
/// etcd and Redis servers tests start (a stopped one's clients keep calling its
/// port, which must not lead them to another test's server). Port 0 hands
/// out ports from the kernel's ephemeral range, which every outgoing
/// connection and every other test's listener also draws from: a port freed by
/// a SIGKILL can be taken before the restart binds it again. These come from
/// below that range (20000–29999), where nothing else in a test run binds.
public enum StablePort {
    private static let next = Mutex(Int.random(in: 0..<10_000))

    /// A port no one listens on now, not handed out before in this process.
    public static func reserve() -> Int {
        for _ in 0..<10_000 {
            let port = next.withLock { n -> Int in n = (n + 1) % 10_000; return 20_000 + n }
            if isFree(port) { return port }
        }
        return 0
    }

    static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
