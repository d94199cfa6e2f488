import RagClient
import RagCore

/// A small corpus with one clearly right document per question.
enum Fixtures {
    static let documents: [RagDocument] = [
        RagDocument(id: "sqlite", text: """
            SQLite is an embedded SQL database engine. When another connection holds a write lock, a call returns SQLITE_BUSY.
            Set a busy timeout so that the library retries for a while before giving up. WAL mode lets readers proceed while one writer commits.
            """, metadata: ["topic": .string("database"), "year": .number(2004), "lang": .string("en")]),
        RagDocument(id: "nginx", text: """
            nginx is an HTTP server and reverse proxy. The worker_processes directive sets how many worker processes serve requests.
            A location block matches request URIs; proxy_pass forwards them to an upstream group of backend servers.
            """, metadata: ["topic": .string("web"), "year": .number(2004), "lang": .string("en")]),
        RagDocument(id: "git-rebase", text: """
            git rebase reapplies commits on top of another base tip. Interactive rebase lets you squash, reorder or edit commits.
            If a conflict stops the rebase, fix the files, stage them and run git rebase --continue.
            """, metadata: ["topic": .string("vcs"), "year": .number(2005), "lang": .string("en")]),
        RagDocument(id: "tcp", text: """
            TCP provides reliable, ordered delivery of a byte stream. The three-way handshake opens a connection with SYN, SYN-ACK and ACK.
            Nagle's algorithm batches small segments; TCP_NODELAY turns it off for latency-sensitive protocols.
            """, metadata: ["topic": .string("network"), "year": .number(1981), "lang": .string("en")]),
        RagDocument(id: "cron", text: """
            cron runs scheduled commands. Each crontab line has five time fields: minute, hour, day of month, month and day of week,
            followed by the command to run. Output is mailed to the owner of the crontab.
            """, metadata: ["topic": .string("system"), "year": .number(1975), "lang": .string("en")]),
        RagDocument(id: "bread", text: """
            Sourdough bread rises with a starter of wild yeast and lactic acid bacteria. Feed the starter flour and water daily.
            A long cold fermentation in the refrigerator develops a more sour flavour and an open crumb.
            """, metadata: ["topic": .string("cooking"), "year": .number(2020), "lang": .string("en")]),
        RagDocument(id: "pain", text: """
            Le pain au levain lève grâce à un levain naturel. Nourrissez le levain avec de la farine et de l'eau chaque jour.
            """, metadata: ["topic": .string("cooking"), "year": .number(2021), "lang": .string("fr")]),
        RagDocument(id: "raft", text: """
            Raft is a consensus algorithm for managing a replicated log. A leader is elected by majority vote for each term;
            followers replicate the leader's log entries, and an entry is committed once a majority has stored it.
            """, metadata: ["topic": .string("distributed"), "year": .number(2014), "lang": .string("en")]),
    ]

    /// Question → the document that answers it.
    static let questions: [(String, String)] = [
        ("what does SQLITE_BUSY mean and how do I retry?", "sqlite"),
        ("how many worker processes does nginx start", "nginx"),
        ("how do I continue a rebase after fixing a conflict", "git-rebase"),
        ("disable Nagle's algorithm with TCP_NODELAY", "tcp"),
        ("what are the five time fields of a crontab line", "cron"),
        ("how is a leader elected in Raft consensus", "raft"),
        ("feed a sourdough starter", "bread"),
    ]
}

/// The status a call ends with: OK, or its error's code.
func code(_ body: () async throws -> Void) async -> RagError.Code {
    do { try await body(); return .ok } catch { return RagError(from: error).code }
}

/// Polls `condition` every 100 ms for up to `seconds`; true once it holds.
func eventually(seconds: Int = 5, _ condition: () async -> Bool) async -> Bool {
    for _ in 0..<(seconds * 10) {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return false
}
