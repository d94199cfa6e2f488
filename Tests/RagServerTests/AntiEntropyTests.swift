import RagWire
@testable import RagServer
import Testing

/// What anti-entropy says about a replica at the primary's sequence number:
/// nothing when it matches, else which of the two differs, with both sides'
/// counts (the line an operator has when a replica is copied again and again).
@Suite struct AntiEntropyTests {
    static func state(seq: UInt64, version: UInt64, digest: UInt64, documents: UInt64, receiving: Bool = false) -> Ragd_V1_ShardCountsResponse {
        .with { $0.seq = seq; $0.seqVersion = version; $0.digest = digest; $0.documents = documents; $0.chunks = documents * 2; $0.receiving = receiving }
    }

    @Test func aReplicaIsComparedByVersionThenDigest() {
        let primary = Self.state(seq: 52, version: 7, digest: 0xABC, documents: 10)
        #expect(AntiEntropy.difference(replica: Self.state(seq: 52, version: 7, digest: 0xABC, documents: 10), primary: primary) == nil)
        let version = AntiEntropy.difference(replica: Self.state(seq: 52, version: 6, digest: 0xABC, documents: 10), primary: primary)
        #expect(version == "its entry 52 was ordered at placement version 6, the primary's at 7")
        let digest = AntiEntropy.difference(replica: Self.state(seq: 52, version: 7, digest: 0xABD, documents: 9, receiving: true), primary: primary)
        #expect(digest == "at entry 52 its documents differ from the primary's (digest abd against abc); 9 documents and 18 chunks against 10 and 20; it is receiving a copy")
    }
}
