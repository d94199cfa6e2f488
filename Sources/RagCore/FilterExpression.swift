/// Parses the human filter syntax used by `ragctl --filter` into a `MetadataFilter`.
///
///     expr  := term (("or" | "||") term)*
///     term  := unary (("and" | "&&" | ",") unary)*
///     unary := ("not" | "!") unary | "(" expr ")" | "exists" KEY | KEY op VALUE | KEY "in" "[" VALUE ("," VALUE)* "]"
///     op    := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
///
/// Bare values are typed: `true`/`false` are booleans, numerals numbers, anything
/// else a string; quote with '…' or "…" to force a string.
public enum FilterExpression {
    public static func parse(_ text: String) throws(RagError) -> MetadataFilter {
        var p = Parser(tokens: try tokenize(text))
        let f = try p.expr()
        guard p.peek == nil else { throw .invalidArgument("filter: unexpected '\(p.peek!.text)' in \(text.debugDescription)") }
        try f.validate()
        return f
    }

    struct Token: Equatable {
        enum Kind { case word, quoted, symbol }
        var kind: Kind
        var text: String
    }

    static func tokenize(_ text: String) throws(RagError) -> [Token] {
        var out: [Token] = []
        let chars = Array(text)
        var i = 0
        let symbolStarts: Set<Character> = ["=", "!", "<", ">", "(", ")", "[", "]", ",", "&", "|"]
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace { i += 1; continue }
            if c == "'" || c == "\"" {
                var j = i + 1
                var s = ""
                while j < chars.count, chars[j] != c {
                    if chars[j] == "\\", j + 1 < chars.count { j += 1 }
                    s.append(chars[j]); j += 1
                }
                guard j < chars.count else { throw .invalidArgument("filter: unterminated quote in \(text.debugDescription)") }
                out.append(Token(kind: .quoted, text: s)); i = j + 1; continue
            }
            if symbolStarts.contains(c) {
                let two = i + 1 < chars.count ? String([c, chars[i + 1]]) : ""
                if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                    out.append(Token(kind: .symbol, text: two)); i += 2
                } else if c == "&" || c == "|" {
                    throw .invalidArgument("filter: lone '\(c)' in \(text.debugDescription)")
                } else {
                    out.append(Token(kind: .symbol, text: String(c))); i += 1
                }
                continue
            }
            var j = i
            var s = ""
            while j < chars.count, !chars[j].isWhitespace, !symbolStarts.contains(chars[j]), chars[j] != "'", chars[j] != "\"" {
                s.append(chars[j]); j += 1
            }
            out.append(Token(kind: .word, text: s)); i = j
        }
        guard !out.isEmpty else { throw .invalidArgument("filter: empty expression") }
        return out
    }

    struct Parser {
        var tokens: [Token]
        var pos = 0
        /// Nesting of `not` and parentheses: bounded like the wire form's, so a long
        /// run of `!` or `(` is an error, not a stack overflow (found by fuzzing).
        var depth = 0
        var peek: Token? { pos < tokens.count ? tokens[pos] : nil }

        mutating func nested<T>(_ body: (inout Parser) throws(RagError) -> T) throws(RagError) -> T {
            depth += 1
            defer { depth -= 1 }
            guard depth < 32 else { throw .invalidArgument("filter is nested deeper than 32 levels") }
            return try body(&self)
        }

        mutating func next() throws(RagError) -> Token {
            guard let t = peek else { throw .invalidArgument("filter: expression ends too early") }
            pos += 1
            return t
        }

        func isWord(_ t: Token?, _ w: String) -> Bool { t?.kind == .word && t?.text.lowercased() == w }
        func isSymbol(_ t: Token?, _ s: String) -> Bool { t?.kind == .symbol && t?.text == s }

        mutating func expr() throws(RagError) -> MetadataFilter {
            var parts = [try term()]
            while isWord(peek, "or") || isSymbol(peek, "||") { pos += 1; parts.append(try term()) }
            return parts.count == 1 ? parts[0] : .or(parts)
        }

        mutating func term() throws(RagError) -> MetadataFilter {
            var parts = [try unary()]
            while isWord(peek, "and") || isSymbol(peek, "&&") || isSymbol(peek, ",") { pos += 1; parts.append(try unary()) }
            return parts.count == 1 ? parts[0] : .and(parts)
        }

        mutating func unary() throws(RagError) -> MetadataFilter {
            if isWord(peek, "not") || isSymbol(peek, "!") { pos += 1; return .not(try nested { (p) throws(RagError) in try p.unary() }) }
            if isSymbol(peek, "(") {
                pos += 1
                let e = try nested { (p) throws(RagError) in try p.expr() }
                guard isSymbol(peek, ")") else { throw .invalidArgument("filter: missing ')'") }
                pos += 1
                return e
            }
            if isWord(peek, "exists") {
                pos += 1
                return .compare(key: try key(), op: .exists, values: [])
            }
            let k = try key()
            let t = try next()
            if t.kind == .word, t.text.lowercased() == "in" {
                guard isSymbol(peek, "[") || isSymbol(peek, "(") else { throw .invalidArgument("filter: 'in' needs a list like [a, b]") }
                let close = isSymbol(peek, "[") ? "]" : ")"
                pos += 1
                var values = [try value()]
                while isSymbol(peek, ",") { pos += 1; values.append(try value()) }
                guard isSymbol(peek, close) else { throw .invalidArgument("filter: missing '\(close)' after 'in' list") }
                pos += 1
                return .compare(key: k, op: .in, values: values)
            }
            if t.kind == .word, t.text.lowercased() == "exists" { return .compare(key: k, op: .exists, values: []) }
            let ops: [String: MetadataFilter.Op] = ["=": .eq, "==": .eq, "!=": .ne, "<": .lt, "<=": .lte, ">": .gt, ">=": .gte]
            guard t.kind == .symbol, let op = ops[t.text] else {
                throw .invalidArgument("filter: expected an operator after '\(k)', found '\(t.text)'")
            }
            return .compare(key: k, op: op, values: [try value()])
        }

        mutating func key() throws(RagError) -> String {
            let t = try next()
            guard t.kind != .symbol, !t.text.isEmpty else { throw .invalidArgument("filter: expected a metadata key, found '\(t.text)'") }
            return t.text
        }

        mutating func value() throws(RagError) -> MetadataValue {
            let t = try next()
            switch t.kind {
            case .quoted: return .string(t.text)
            case .symbol: throw .invalidArgument("filter: expected a value, found '\(t.text)'")
            case .word:
                switch t.text.lowercased() {
                case "true": return .bool(true)
                case "false": return .bool(false)
                default: return Double(t.text).map(MetadataValue.number) ?? .string(t.text)
                }
            }
        }
    }
}
