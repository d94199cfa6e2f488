// Two builds of one target. With `-sanitize=fuzzer -DFUZZING` (Scripts/fuzz.sh)
// libFuzzer drives `LLVMFuzzerTestOneInput` and brings its own main. Without
// them this is a replayer: `RagFuzz FILE|DIR…` runs every input once, which
// is how a crash the fuzzer saved is reproduced under a debugger.
import Foundation

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

/// SwiftPM links an executable's entry point as `<Module>_main`, so libFuzzer's
/// own `main` is never used: this one hands control to its driver instead.
@_cdecl("RagFuzz_main")
public func ragFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    typealias Driver = @convention(c) (UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, Callback) -> CInt
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "LLVMFuzzerRunDriver") else {
        FileHandle.standardError.write(Data("RagFuzz: libFuzzer driver missing (build with -sanitize=fuzzer)\n".utf8))
        return 2
    }
    var argc = argc
    var argv = argv
    return unsafeBitCast(symbol, to: Driver.self)(&argc, &argv, fuzzOneInput)
}
#else
@main
struct Replay {
    static func main() {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("RagFuzz: no such file \(path)\n".utf8))
                exit(1)
            }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                FuzzTargets.run(Array(data))
                count += 1
            }
        }
        print("replayed \(count) inputs")
    }
}
#endif
