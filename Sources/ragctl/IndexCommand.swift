import ArgumentParser
import Foundation
import RagClient
import RagCore

struct IndexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Index .txt, .md and .jsonl files (folders recursively).",
        discussion: "A .txt/.md file is one document whose id is its path relative to the argument; a .jsonl file holds one {id, text, metadata} object per line (a title field is kept as metadata).")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Collection to index into (created if missing).") var collection = "default"
    @Option(help: "Documents per request; 0 sends everything in one streamed request and shows the server's progress.") var batch = 64
    @Option(help: "Chunk size in characters (0: server default).") var chunkSize = 0
    @Option(help: "Chunk overlap in characters (0: server default).") var chunkOverlap = 0
    @Option(help: "Vector index of a collection this creates: exact, int8, hnsw or auto (default: the server's --vector-index).") var index = ""
    @Argument(help: "Files or folders.") var paths: [String]

    func run() async throws {
        let docs = try DocumentReader.read(paths)
        guard !docs.isEmpty else { throw failure("no .txt, .md or .jsonl documents found in \(paths.joined(separator: " "))") }
        let client = try connection.client()
        try await runReporting {
            var progress = Progress(total: docs.count, label: "docs")
            var total = (documents: 0, chunks: 0, replaced: 0, unchanged: 0)
            if batch == 0 {
                do {
                    for try await e in try await client.indexStream(docs, collection: collection, chunkSize: chunkSize, chunkOverlap: chunkOverlap, index: index, timeout: connection.indexDeadline) {
                        switch e.event {
                        case .progress(let p): if !connection.json { progress.update(Int(p.documentsDone), extra: "\(p.chunksDone) chunks") }
                        case .done(let r): total = (Int(r.documents), Int(r.chunks), Int(r.replaced), Int(r.unchanged))
                        case nil: break
                        }
                    }
                } catch { throw RagError(from: error) }
                print("indexed \(total.documents) documents (\(total.chunks) chunks, \(total.replaced) replaced, \(total.unchanged) unchanged) into \(collection)")
                return
            }
            var done = 0
            for start in stride(from: 0, to: docs.count, by: max(1, batch)) {
                let slice = Array(docs[start..<min(start + max(1, batch), docs.count)])
                let r: IndexResponse
                do {
                    r = try await client.index(slice, collection: collection, chunkSize: chunkSize, chunkOverlap: chunkOverlap, index: index, timeout: connection.indexDeadline)
                } catch let e as RagError where e.code == .deadlineExceeded && e.message.hasPrefix(RagClient.noAnswerMessage) {
                    // The server never answered: unlike its own errors (after which
                    // nothing of the batch is visible), this batch may have committed.
                    throw RagError.batchFailed(e, documentIDs: slice.map(\.id), committedBefore: done,
                                               rerun: "whether this batch committed is unknown; running the same command again completes it and skips what is stored")
                } catch {
                    throw RagError.batchFailed(error, documentIDs: slice.map(\.id), committedBefore: done, rerun: "nothing of the failed batch is stored; running the same command again skips the committed ones")
                }
                total.documents += Int(r.documents); total.chunks += Int(r.chunks)
                total.replaced += Int(r.replaced); total.unchanged += Int(r.unchanged)
                done += slice.count
                if !connection.json { progress.update(done, extra: "\(total.chunks) chunks") }
            }
            if connection.json {
                print("{\"documents\": \(total.documents), \"chunks\": \(total.chunks), \"replaced\": \(total.replaced), \"unchanged\": \(total.unchanged)}")
            } else {
                print("indexed \(total.documents) documents (\(total.chunks) chunks, \(total.replaced) replaced, \(total.unchanged) unchanged) into \(collection)")
            }
        }
    }
}

enum DocumentReader {
    static func read(_ paths: [String]) throws -> [RagDocument] {
        var out: [RagDocument] = []
        let fm = FileManager.default
        for root in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: root, isDirectory: &isDir) else { throw failure("no such file or folder: \(root)") }
            if isDir.boolValue {
                let base = URL(fileURLWithPath: root).standardizedFileURL.path
                let files = (fm.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []).sorted()
                for rel in files {
                    let full = base + "/" + rel
                    var d: ObjCBool = false
                    if fm.fileExists(atPath: full, isDirectory: &d), !d.boolValue { out += try readFile(full, id: rel) }
                }
            } else {
                out += try readFile(root, id: (root as NSString).lastPathComponent)
            }
        }
        return out
    }

    static func readFile(_ path: String, id: String) throws -> [RagDocument] {
        let ext = (path as NSString).pathExtension.lowercased()
        guard ["txt", "md", "jsonl"].contains(ext) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else { throw failure("cannot read \(path)") }
        let text = String(decoding: data, as: UTF8.self)
        if ext != "jsonl" {
            guard !text.allSatisfy(\.isWhitespace) else { return [] }
            return [RagDocument(id: id, text: text, metadata: ["path": .string(id), "type": .string(ext)])]
        }
        var docs: [RagDocument] = []
        let decoder = JSONDecoder()
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let row = try? decoder.decode(JSONLine.self, from: Data(line.utf8)) else {
                throw failure("\(path):\(n + 1): expected a JSON object with a text field")
            }
            var meta: Metadata = [:]
            for (k, v) in row.metadata ?? [:] { if let value = v.value { meta[k] = value } }
            if let title = row.title { meta["title"] = .string(title) }
            docs.append(RagDocument(id: row.id?.value?.description ?? "\(id):\(n + 1)", text: row.text, metadata: meta))
        }
        return docs
    }

    struct JSONLine: Decodable {
        var id: Scalar?
        var text: String
        var title: String?
        var metadata: [String: Scalar]?
    }

    /// A metadata value; nested objects, arrays and null are skipped.
    struct Scalar: Decodable {
        var value: MetadataValue?
        init(from decoder: any Decoder) throws {
            value = try? MetadataValue(from: decoder)
        }
    }
}
