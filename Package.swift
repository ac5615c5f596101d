// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "XenGnt",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "XenGnt", targets: ["XenGnt"]),
        .library(name: "XenGntTesting", targets: ["XenGntTesting"]),
        .library(name: "XenGntDRM", targets: ["XenGntDRM"]),
        .executable(name: "xengnt-example", targets: ["xengnt-example"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // The Linux uapi headers for gntdev, gntalloc and dma-buf (Debian: libxen-dev, linux-libc-dev).
        .systemLibrary(
            name: "CXenGnt",
            path: "Sources/CXenGnt",
            providers: [.apt(["libxen-dev"])]
        ),
        // Xen's own C libraries (libxenstore, libxenevtchn, libxengnttab), for the lab and the
        // conformance suite only.
        .systemLibrary(
            name: "CXenTools",
            path: "Sources/CXenTools",
            providers: [.apt(["libxen-dev"])]
        ),
        // libdrm: its uapi headers and its pure functions (format names); every DRM ioctl goes
        // through XenGnt's seam instead (Debian: libdrm-dev).
        .systemLibrary(
            name: "CDRM",
            path: "Sources/CDRM",
            pkgConfig: "libdrm",
            providers: [.apt(["libdrm-dev"])]
        ),
        .target(
            name: "XenGnt",
            dependencies: [
                "CXenGnt",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // The DRM bridge: grant refs to pixels on a KMS display (PRIME, dumb buffers,
        // framebuffers, mode setting, page flips, writeback capture).
        .target(
            name: "XenGntDRM",
            dependencies: [
                "XenGnt",
                "CDRM",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "XenGntTesting",
            dependencies: [
                "XenGnt",
                "CXenGnt",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // The conformance cases, written once: the unit tests run them on the simulator, the lab
        // runner on a real Xen.
        .target(
            name: "XenGntConformance",
            dependencies: [
                "XenGnt",
                "XenGntDRM",
                "CDRM",
                "CXenGnt",
                "CXenTools",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "xengnt-lab-runner",
            dependencies: [
                "XenGnt",
                "XenGntConformance",
                "CXenTools",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "xengnt-example",
            dependencies: ["XenGnt", "XenGntTesting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "XenGntTests",
            dependencies: [
                "XenGnt",
                "XenGntDRM",
                "CDRM",
                "XenGntTesting",
                "XenGntConformance",
                "CXenGnt",
                "CXenTools",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Benchmarks (ordo-one/benchmark) are opt-in, so that building, testing or depending on XenGnt
// never fetches them. Run: XENGNT_BENCHMARKS=1 swift package benchmark
// They live in this package (not a separate one) to reach the seam, which is `package`-visible.
if Context.environment["XENGNT_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]))
    package.targets.append(
        .executableTarget(
            name: "XenGntBenchmarks",
            dependencies: [
                "XenGnt",
                "XenGntTesting",
                "CXenGnt",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/XenGntBenchmarks",
            swiftSettings: strict,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ))
}
