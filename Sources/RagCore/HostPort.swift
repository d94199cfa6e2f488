/// "host:port" split at the last colon (so "::1:7878" keeps its host); nil
/// unless the port is a number in 1...65535.
public func splitHostPort(_ address: String) -> (host: String, port: Int)? {
    guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port) else {
        return nil
    }
    return (String(address[..<colon]), port)
}
