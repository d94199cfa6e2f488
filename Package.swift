// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "Ragd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RagClient", targets: ["RagClient"]),
        .library(name: "RagServer", targets: ["RagServer"]),
        .library(name: "RagTesting", targets: ["RagTesting"]),
        .executable(name: "ragd", targets: ["ragd"]),
        .executable(name: "ragctl", targets: ["ragctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.2.0"),
        // Only the OTLP/HTTP exporter: the gRPC one would build grpc-swift for nothing.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        .target(name: "RagCore", swiftSettings: strict),
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .target(
            name: "RagWire",
            dependencies: [
                "RagCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        .systemLibrary(name: "COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "RagEngine",
            dependencies: ["RagCore", "COpenBLAS", "CRagKernels", "CRagEncoder", .product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: strict
        ),
        .target(
            name: "RagStore",
            dependencies: ["RagCore", "RagEngine", "CZlib", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "GRDBSQLite", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .target(
            name: "RagClient",
            dependencies: [
                "RagCore", "RagWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "RagServer",
            dependencies: [
                "RagCore", "RagWire", "RagEngine", "RagStore", "RagClient", "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        // glibc's posix_spawn closefrom/chdir for the tests' child processes (RagTesting.ChildProcess).
        .target(name: "CRagSpawn"),
        // Distance kernels dispatched at run time (cpuid) to AVX-512 / AVX2+FMA / portable C.
        .target(name: "CRagKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "CRagEncoder", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "RagTesting", dependencies: ["RagServer", "RagClient", "RagEngine", "RagWire", "CRagSpawn"], swiftSettings: strict),
        .executableTarget(
            name: "ragd",
            dependencies: ["RagServer", "RagEngine", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "OTel", package: "swift-otel"), .product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ragctl",
            dependencies: [
                "RagClient", "RagEngine", "RagWire", "RagServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Fuzz targets: a corpus replayer in normal builds; libFuzzer with
        // `-sanitize=fuzzer,address -DFUZZING` (Scripts/fuzz.sh).
        .executableTarget(
            name: "RagFuzz",
            dependencies: ["RagCore", "RagWire", "RagEngine", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "RagWireTests",
            dependencies: ["RagWire", .product(name: "NIOTestUtils", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(name: "RagEngineTests", dependencies: ["RagEngine", "CRagEncoder", "RagServer", "RagTesting"]),
        .testTarget(name: "RagStoreTests", dependencies: ["RagStore"]),
        .testTarget(name: "RagServerTests", dependencies: ["RagServer", "RagClient", "RagTesting", "RagWire", "RagEngine", "RagStore",
                                                       .product(name: "GRDB", package: "GRDB.swift")]),
    ]
)
