extension String {
    /// At most `maxBytes` bytes of UTF-8, cut at a character boundary, with "…"
    /// appended when something was cut. Bounds what error messages echo back.
    public func truncatedUTF8(maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return self }
        var out = ""
        var used = 0
        let budget = max(0, maxBytes - 3)  // room for the ellipsis (3 bytes)
        for c in self {
            let n = c.utf8.count
            if used + n > budget { break }
            out.append(c)
            used += n
        }
        return out + "…"
    }
}
