import RagCore
import RagEngine
import Testing

@Suite struct ChunkerTests {
    @Test func shortDocumentStaysWhole() throws {
        let c = try Chunker(size: 100, overlap: 10)
        #expect(c.chunks("  Hello world. Second sentence.  ") == ["Hello world. Second sentence."])
    }

    @Test func chunksRespectSizeCoverTextAndOverlap() throws {
        let sentences = (1...60).map { "Sentence number \($0) talks about topic \($0 % 7)." }
        let text = sentences.joined(separator: " ")
        let c = try Chunker(size: 200, overlap: 50)
        let chunks = c.chunks(text)
        #expect(chunks.count > 5)
        for ch in chunks { #expect(ch.count <= 200) }
        // Every sentence appears in some chunk, whole.
        for s in sentences { #expect(chunks.contains { $0.contains(s) }, "missing \(s)") }
        // Consecutive chunks share text (the overlap), and never more than needed.
        for (a, b) in zip(chunks, chunks.dropFirst()) {
            let tail = String(a.suffix(40))
            #expect(b.contains(tail.split(separator: " ").last!), "no overlap between \(a.suffix(30)) and \(b.prefix(30))")
        }
    }

    @Test func noOverlapMeansDisjointChunks() throws {
        let text = (1...40).map { "Line \($0) of the text." }.joined(separator: " ")
        let chunks = try Chunker(size: 100, overlap: 0).chunks(text)
        #expect(chunks.joined(separator: " ") == text)
    }

    @Test func prefersParagraphBoundaries() throws {
        let p1 = String(repeating: "Alpha words here. ", count: 4).trimmingCharacters(in: .whitespaces)
        let p2 = String(repeating: "Beta words there. ", count: 4).trimmingCharacters(in: .whitespaces)
        let chunks = try Chunker(size: 100, overlap: 0).chunks(p1 + "\n\n" + p2)
        #expect(chunks.first == p1)
    }

    @Test func neverSplitsInsideAScalarOrCluster() throws {
        // 4-byte emoji and combining sequences, no spaces: forces hard cuts.
        let text = String(repeating: "😀é👩‍👩‍👧", count: 300)
        let chunks = try Chunker(size: 50, overlap: 10).chunks(text)
        #expect(chunks.count > 1)
        for ch in chunks {
            #expect(ch.count <= 50)
            #expect(ch.unicodeScalars.allSatisfy { $0.properties.isEmoji || $0.value == 0xE9 || $0.value == 0x200D || $0.properties.generalCategory == .nonspacingMark })
            #expect(String(decoding: Array(ch.utf8), as: UTF8.self) == ch)
        }
        #expect(chunks.first!.hasPrefix("😀é"))
    }

    @Test func longWordsAreCutAtTheLimit() throws {
        let chunks = try Chunker(size: 20, overlap: 0).chunks(String(repeating: "x", count: 70))
        #expect(chunks.map(\.count) == [20, 20, 20, 10])
    }

    @Test func badSettingsAreRejected() {
        #expect(throws: RagError.self) { try Chunker(size: 0, overlap: 0) }
        #expect(throws: RagError.self) { try Chunker(size: 100, overlap: 90) }
    }
}

import Foundation
