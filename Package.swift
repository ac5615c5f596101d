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
        .library(name: "XenGntBackend", targets: ["XenGntBackend"]),
        .executable(name: "xengnt-example", targets: ["xengnt-example"]),
        // issue 9: the vdispl (displif.h) backend and its daemon.
        .library(name: "XenDisplayBackend", targets: ["XenDisplayBackend"]),
        .executable(name: "xengnt-display-backend", targets: ["xengnt-display-backend"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        // The display backend's daemon (issue 9).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
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
        // Xen's public I/O headers for backends: xs_wire.h, ring.h, displif.h, xenbus.h, evtchn.h,
        // with ring.h's barriers as C11 fences and atomic helpers for shared indices.
        .systemLibrary(
            name: "CXenBackend",
            path: "Sources/CXenBackend",
            providers: [.apt(["libxen-dev"])]
        ),
        // XenStore, event channels, shared rings and the backend lifecycle, over XenGnt's seam.
        .target(
            name: "XenGntBackend",
            dependencies: [
                "XenGnt",
                "CXenBackend",
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
                "XenGntBackend",
                "CXenBackend",
                "CXenGnt",
                "CDRM",
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
                "XenGntBackend",
                "CXenBackend",
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
        // MARK: The display backend (issue 9)
        // libpng, for the headless sink's PNG files (Debian: libpng-dev).
        .systemLibrary(
            name: "CPNG",
            path: "Sources/CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]
        ),
        .target(
            name: "XenDisplayBackend",
            dependencies: [
                "XenGnt",
                "XenGntBackend",
                "XenGntDRM",
                "CXenBackend",
                "CPNG",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "xengnt-display-backend",
            dependencies: [
                "XenDisplayBackend",
                "XenGnt",
                "XenGntTesting",  // --demo: a scripted frontend on the simulated Xen
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "XenDisplayBackendTests",
            dependencies: [
                "XenDisplayBackend",
                "XenGnt",
                "CPNG",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "XenGntTests",
            dependencies: [
                "XenDisplayBackend",  // the display backend on the simulator (issue 9)
                .product(name: "Logging", package: "swift-log"),
                "XenGnt",
                "XenGntDRM",
                "CDRM",
                "XenGntBackend",
                "CXenBackend",
                "XenGntTesting",
                "XenGntConformance",
                "CXenGnt",
                "CXenTools",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "PropertyBased", package: "swift-property-based"),
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
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"])
    )
    package.targets.append(
        .executableTarget(
            name: "XenGntBenchmarks",
            dependencies: [
                "XenGnt",
                "XenGntTesting",
                "XenDisplayBackend",
                "CXenGnt",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/XenGntBenchmarks",
            swiftSettings: strict,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    )
}
