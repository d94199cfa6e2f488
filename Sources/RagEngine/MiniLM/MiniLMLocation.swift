import Foundation
import RagCore

/// Where the MiniLM weights are when no directory is given. `ragd serve` may be
/// started from anywhere, so a path relative to the working directory is not
/// enough: the places Scripts/fetch-minilm.sh installs to are searched, then
/// the folders above the executable (a checkout's `.build/release/ragd` finds
/// the checkout's `models/`), then the working directory.
public enum MiniLMLocation {
    public static let folder = "all-minilm-l6-v2"
    public static let files = ["vocab.txt", "model.safetensors"]

    /// Candidate directories, most specific first.
    public static func candidates(environment: [String: String] = ProcessInfo.processInfo.environment,
                                  executable: String? = executablePath()) -> [String] {
        var out: [String] = []
        if let shared = environment["RAGD_MODELS_DIR"] { out.append(shared + "/" + folder) }
        out.append("/usr/local/share/ragd/models/" + folder)
        if let home = environment["HOME"] { out.append(home + "/.local/share/ragd/models/" + folder) }
        if let executable {
            var dir = URL(fileURLWithPath: executable).deletingLastPathComponent()
            for _ in 0..<5 {
                out.append(dir.appendingPathComponent("models/" + folder).path)
                out.append(dir.appendingPathComponent("share/ragd/models/" + folder).path)
                dir = dir.deletingLastPathComponent()
            }
        }
        out.append(FileManager.default.currentDirectoryPath + "/models/" + folder)
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// The first candidate that holds every file; otherwise an error that says
    /// where it looked and how to get the weights.
    public static func find(in candidates: [String] = candidates()) throws(RagError) -> String {
        if let dir = candidates.first(where: { d in files.allSatisfy { FileManager.default.fileExists(atPath: d + "/" + $0) } }) {
            return dir
        }
        throw RagError(.failedPrecondition, "the MiniLM weights (\(files.joined(separator: ", "))) were not found; looked in "
                           + candidates.joined(separator: ", ") + ". Run Scripts/fetch-minilm.sh (Scripts/install-deps.sh does), or pass --minilm-dir DIR")
    }

    /// Checks a given directory, naming the first missing file.
    public static func check(_ directory: String) throws(RagError) {
        for f in files where !FileManager.default.fileExists(atPath: directory + "/" + f) {
            throw RagError(.failedPrecondition, "MiniLM file \(f) is missing in \(directory): run Scripts/fetch-minilm.sh \(directory) "
                               + "to fetch the weights there, or pass --minilm-dir with the folder that holds them")
        }
    }

    public static func executablePath() -> String? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first
    }
}
