// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Kiln", targets: ["KilnIR", "KilnONNX", "KilnOptimizer", "KilnRuntime", "KilnCPU", "KilnCUDA"]),
        .executable(name: "kiln", targets: ["kiln"]),
        .executable(name: "network-example", targets: ["NetworkExample"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(name: "KilnIR"),
        .target(
            name: "KilnONNX",
            dependencies: ["KilnIR", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["onnx.proto"]
        ),
        .target(name: "KilnOptimizer", dependencies: ["KilnIR"]),
        .target(
            name: "KilnRuntime",
            dependencies: ["KilnIR", "KilnOptimizer", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Plan/plan.proto"]
        ),
        .target(name: "CKilnMicroKernels"),
        .target(name: "KilnCPU", dependencies: ["KilnIR", "KilnRuntime", "CKilnMicroKernels"]),
        .target(name: "KilnCUDA", dependencies: ["KilnIR", "KilnOptimizer", "KilnRuntime", "KilnCPU"]),
        .target(name: "KilnTestSupport", dependencies: ["KilnIR", "KilnONNX", "KilnRuntime", "KilnCPU"]),
        .executableTarget(
            name: "kiln",
            dependencies: [
                "KilnIR", "KilnONNX", "KilnOptimizer", "KilnRuntime", "KilnCPU", "KilnCUDA", "KilnTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "NetworkExample", dependencies: ["KilnIR", "KilnRuntime", "KilnCPU", "KilnCUDA"],
            path: "Examples/NetworkExample"),
        .testTarget(name: "KilnIRTests", dependencies: ["KilnIR", "KilnTestSupport"]),
        .testTarget(name: "KilnONNXTests", dependencies: ["KilnONNX", "KilnTestSupport"]),
        .testTarget(name: "KilnOptimizerTests", dependencies: ["KilnOptimizer", "KilnCPU", "KilnTestSupport"]),
        .testTarget(name: "KilnCPUTests", dependencies: ["KilnCPU", "KilnTestSupport"]),
        .testTarget(
            name: "KilnCUDATests", dependencies: ["KilnCUDA", "KilnCPU", "KilnTestSupport"],
            exclude: ["run_elementwise_cases.py"]),
    ],
    swiftLanguageModes: [.v6]
)
