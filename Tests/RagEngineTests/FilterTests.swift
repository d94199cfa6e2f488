import RagCore
import Testing

@Suite struct FilterTests {
    let meta: Metadata = ["lang": .string("en"), "year": .number(2021), "draft": .bool(false), "section": .string("8")]

    func check(_ expr: String) throws -> Bool { try FilterExpression.parse(expr).matches(meta) }

    @Test func everyOperator() throws {
        #expect(try check("lang = en"))
        #expect(try !check("lang = fr"))
        #expect(try check("lang != fr"))
        #expect(try check("lang in [fr, en]"))
        #expect(try !check("lang in [fr, de]"))
        #expect(try check("year < 2022") && !check("year < 2021"))
        #expect(try check("year <= 2021") && !check("year <= 2020"))
        #expect(try check("year > 2020") && !check("year > 2021"))
        #expect(try check("year >= 2021") && !check("year >= 2022"))
        #expect(try check("exists lang") && check("lang exists") && !check("exists nope"))
        #expect(try check("draft = false") && !check("draft = true"))
        #expect(try check("lang < fr"))  // strings order byte-wise
    }

    @Test func booleanStructure() throws {
        #expect(try check("lang = en and year >= 2020"))
        #expect(try !check("lang = en and year >= 2030"))
        #expect(try check("lang = fr or year = 2021"))
        #expect(try check("not lang = fr"))
        #expect(try check("!(lang = fr || draft = true) && (year > 2000, section = 8)"))
    }

    @Test func missingKeysAndTypeMismatches() throws {
        // Missing key: false, except ne (and not) which are true.
        #expect(try !check("nope = 1"))
        #expect(try check("nope != 1"))
        #expect(try !check("nope < 5"))
        #expect(try check("not nope = 1"))
        // A numeric string compares numerically with a number; other mixes are false.
        #expect(try check("section = 8") && check("section >= 7"))
        #expect(try !check("lang = 5"))
        #expect(try !check("draft = 'false'"))
        #expect(try !check("year = true"))
    }

    @Test func malformedExpressionsAreInvalidArgument() {
        for bad in ["", "lang", "lang =", "= en", "(lang = en", "lang in []", "lang in en", "year < true", "a = 'x", "a & b"] {
            #expect(throws: RagError.self, "\(bad)") { try FilterExpression.parse(bad) }
        }
    }

    @Test func canonicalFormIgnoresOrder() throws {
        let a = try FilterExpression.parse("lang = en and year > 2000 and tag in [x, y]")
        let b = try FilterExpression.parse("tag in [y, x] and year > 2000 and lang = en")
        #expect(a.canonical == b.canonical)
    }

    /// Found by fuzzing: a long run of `!` (or `(`) overflowed the stack.
    @Test func deepNestingIsAnErrorNotAStackOverflow() {
        for text in [String(repeating: "!", count: 50_000) + "a = 1", String(repeating: "(", count: 50_000) + "a = 1"] {
            #expect(throws: RagError.self) { try FilterExpression.parse(text) }
        }
        #expect((try? FilterExpression.parse(String(repeating: "not ", count: 20) + "a = 1")) != nil)
    }
}
