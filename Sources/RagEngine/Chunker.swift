import RagCore

/// Splits a document into chunks of about `size` characters that overlap by
/// about `overlap` characters, preferring paragraph, then sentence, then word
/// boundaries. Works on `Character`s, so it never splits a UTF-8 scalar (or a
/// grapheme cluster).
public struct Chunker: Sendable, Hashable {
    public var size: Int
    public var overlap: Int

    public static let defaultSize = 1000
    public static let defaultOverlap = 100

    public init(size: Int = Chunker.defaultSize, overlap: Int = Chunker.defaultOverlap) throws(RagError) {
        guard size >= 16, size <= 100_000 else { throw .invalidArgument("chunk_size must be between 16 and 100000 characters, got \(size)") }
        guard overlap >= 0, overlap < size / 2 + 1 else {
            throw .invalidArgument("chunk_overlap must be at least 0 and at most half of chunk_size (\(size / 2)), got \(overlap)")
        }
        self.size = size
        self.overlap = overlap
    }

    /// A span of the document; `paragraphStart` marks a unit that begins a paragraph.
    struct Unit { var start: Int; var end: Int; var paragraphStart: Bool }

    /// Most Unicode scalars one `Character` may bring into a chunk. Real grapheme
    /// clusters have a handful; a hostile one can have millions (a base letter and
    /// endless combining marks) and would otherwise become one giant "character".
    public static let maxScalarsPerCharacter = 16

    public func chunks(_ text: String) -> [String] {
        let chars = Self.characters(text)
        let units = Self.units(chars, maxLength: size)
        guard !units.isEmpty else { return [] }
        if chars.count <= size { return [Self.trimmed(chars, 0, chars.count)].filter { !$0.isEmpty } }
        var out: [String] = []
        var first = 0
        var start = units[0].start
        while true {
            var last = first
            while last + 1 < units.count, units[last + 1].end - start <= size {
                // Prefer to end at a paragraph once the chunk is reasonably full.
                if units[last + 1].paragraphStart, units[last].end - start >= size * 3 / 5 { break }
                last += 1
            }
            out.append(Self.trimmed(chars, start, units[last].end))
            guard last + 1 < units.count else { break }
            // The next chunk starts `overlap` characters back: at the first whole
            // unit that fits, else at a word boundary inside the last unit.
            let target = units[last].end - overlap
            var nextUnit = last + 1
            var nextStart = units[last + 1].start
            if overlap > 0 {
                if let u = stride(from: first + 1, through: last, by: 1).first(where: { units[$0].start >= target && units[$0].start > start }) {
                    nextUnit = u; nextStart = units[u].start
                } else {
                    var s = max(target, units[last].start)
                    while s < units[last].end, !chars[s].isWhitespace { s += 1 }
                    if s < units[last].end, s > start { nextUnit = last; nextStart = s }
                }
            }
            // Always make progress: the next chunk must reach past this one.
            if units[last + 1].end - nextStart > size { nextUnit = last + 1; nextStart = units[last + 1].start }
            first = nextUnit
            start = nextStart
        }
        return out.filter { !$0.isEmpty }
    }

    /// The text's characters, with any cluster longer than `maxScalarsPerCharacter`
    /// scalars cut into pieces of at most that many: so a chunk of `size`
    /// characters is at most `size × maxScalarsPerCharacter` scalars, whatever
    /// the grapheme structure.
    static func characters(_ text: String) -> [Character] {
        var out: [Character] = []
        out.reserveCapacity(text.utf8.count / 2)
        for c in text {
            if c.unicodeScalars.count <= maxScalarsPerCharacter { out.append(c); continue }
            var piece = String.UnicodeScalarView()
            for s in c.unicodeScalars {
                piece.append(s)
                if piece.count == maxScalarsPerCharacter {
                    // Re-segmented: a slice of one cluster can be several (never trap on `Character(_:)`).
                    out.append(contentsOf: String(piece))
                    piece = String.UnicodeScalarView()
                }
            }
            if !piece.isEmpty { out.append(contentsOf: String(piece)) }
        }
        return out
    }

    static func trimmed(_ chars: [Character], _ a: Int, _ b: Int) -> String {
        var a = a, b = b
        while a < b, chars[a].isWhitespace { a += 1 }
        while b > a, chars[b - 1].isWhitespace { b -= 1 }
        return String(chars[a..<b])
    }

    /// Sentences (ending in .!? before whitespace, or at a line end), each at most
    /// `maxLength` characters (longer ones are cut at spaces, or hard if none).
    static func units(_ chars: [Character], maxLength: Int) -> [Unit] {
        var out: [Unit] = []
        var start = 0
        var paragraph = true
        var i = 0
        func emit(_ end: Int) {
            if (start..<end).contains(where: { !chars[$0].isWhitespace }) {
                for piece in split(start, end) { out.append(Unit(start: piece.0, end: piece.1, paragraphStart: paragraph && piece.0 == start)) }
                paragraph = false
            }
            start = end
        }
        func split(_ a: Int, _ b: Int) -> [(Int, Int)] {
            guard b - a > maxLength else { return [(a, b)] }
            var pieces: [(Int, Int)] = []
            var s = a
            while b - s > maxLength {
                var cut = s + maxLength
                while cut > s + maxLength / 2, !chars[cut - 1].isWhitespace { cut -= 1 }
                if cut <= s + maxLength / 2 { cut = s + maxLength }
                pieces.append((s, cut)); s = cut
            }
            pieces.append((s, b))
            return pieces
        }
        while i < chars.count {
            let c = chars[i]
            if c == "\n" || c == "\r\n" {
                var j = i + 1
                var blank = false
                while j < chars.count, chars[j].isWhitespace { if chars[j] == "\n" || chars[j] == "\r\n" { blank = true }; j += 1 }
                emit(j)
                if blank { paragraph = true }
                i = j
                continue
            }
            if c == "." || c == "!" || c == "?", i + 1 < chars.count, chars[i + 1] == " " || chars[i + 1] == "\t" {
                var j = i + 1
                while j < chars.count, chars[j] == " " || chars[j] == "\t" { j += 1 }
                emit(j)
                i = j
                continue
            }
            i += 1
        }
        emit(chars.count)
        return out
    }
}
