import Foundation
/// The deadline tests give calls that should answer at once. It catches hangs; it
/// is not a time limit: every test of the run starts together in one process, so
/// in the first minute an in-process server shares two cores with MiniLM, kernel
/// and statistics tests, and a trivial call has waited over 10 s for a thread.
public let hangGuard: Duration = .seconds(60)

/// The whole text of a /proc file. They report no size, and
/// `String(contentsOfFile:)` stops after the first 4 KiB of one.
public func readProcFile(_ path: String) -> String {
    FileHandle(forReadingAtPath: path).map { String(decoding: $0.readDataToEndOfFile(), as: UTF8.self) } ?? ""
}
