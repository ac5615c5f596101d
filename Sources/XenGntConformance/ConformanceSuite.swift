import SystemPackage
import XenGnt

/// The cases, in the order every domain runs them.
public enum ConformanceSuite {
    public static var cases: [ConformanceCase] {
        grantCases + exportCases + importCases + faultCases + backendCases + drmCases + drmFlowCases
    }

    /// The case named `name`.
    public static func named(_ name: String) -> ConformanceCase? { cases.first { $0.name == name } }
}

extension ConformanceSuite {
    /// A DomU's part of `share-map`.
    static func mapSharedPages(seed: UInt8) -> ConformanceCase.Part {
        { peer in
            let refs = try await peer.refs("refs-\(peer.role)", from: .dom0)
            let mapping = try GrantDevice(on: peer.system).map(refs, from: peer.id(of: .dom0))
            try check(mapping.withUnsafeBytes { Array($0) } == pattern(seed, count: 4 * 4096), "the pattern Dom0 wrote")
            try mapping.withUnsafeMutableBytes { $0[3 * 4096 + 9] = 0xA5 }
            try await peer.publish("written")
            try await peer.wait(for: "checked-\(peer.role)", from: .dom0)
            try mapping.unmap()
            try await peer.publish("unmapped")
        }
    }

    /// Dom0 shares `count` writable pages with `domU` as "refs" and keeps them until "done".
    static func sharePagesUntilDone(count: Int, with domU: LabRole, access: Access = .readWrite) -> ConformanceCase.Part {
        { peer in
            let shared = try GrantAllocator(on: peer.system).share(pages: count, with: peer.id(of: domU), access: access)
            shared.withUnsafeMutableBytes { $0.copyBytes(from: pattern(9, count: count * 4096)) }
            try await peer.publish(refs: shared.refs, as: "refs")
            try await peer.wait(for: "done", from: domU)
            try shared.unshare()
        }
    }
}
