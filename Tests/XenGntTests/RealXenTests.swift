import CXenTools
import Synchronization
import Testing
import XenGnt
import XenGntConformance

#if canImport(Glibc)
import Glibc
#endif

/// This machine's own domain, when it is a Xen domain with gntdev: the single-domain
/// conformance cases run on the real kernel. Elsewhere (a laptop, CI) the suite is skipped; the
/// lab (`Tests/Lab/run`) runs every case, with peers, on a real Xen.
final class LocalKernelWorld: ConformanceWorld {
    let role: LabRole
    let ownID: DomainID
    private let store = Mutex<[String: String]>([:])

    init() throws {
        let capabilities = XenCapabilities.probe()
        guard let type = capabilities.guestType else { throw ConformanceFailure("not a Xen domain") }
        var id = DomainID.dom0
        if let handle = xs_open(0) {
            defer { xs_close(handle) }
            var length: UInt32 = 0
            if let value = xs_read(handle, cxt_xbt_null(), "domid", &length) {
                defer { free(value) }
                id = DomainID(
                    UInt16(String(decoding: UnsafeRawBufferPointer(start: value, count: Int(length)), as: UTF8.self)) ?? 0
                )
            }
        }
        ownID = id
        role = type == .pv ? (id == .dom0 ? .dom0 : .pv) : .pvh
    }

    func system(for role: LabRole) -> XenSystem { .kernel }
    /// This domain's id; Dom0 is 0; any other role names no domain (a grant to it is still made).
    func domainID(of role: LabRole) -> DomainID { role == self.role ? ownID : (role == .dom0 ? .dom0 : DomainID(0x7000)) }
    func write(_ key: String, _ value: String, as role: LabRole) async throws { store.withLock { $0[key] = value } }
    func read(_ key: String, as role: LabRole) async throws -> String? { store.withLock { $0[key] } }
    func bindUnboundPort(as role: LabRole, remote: DomainID) async throws -> UInt32 { throw ConformanceFailure("no peers here") }
    func bindInterdomain(as role: LabRole, remote: DomainID, remotePort: UInt32) async throws -> UInt32 {
        throw ConformanceFailure("no peers here")
    }
    func waitForEvent(as role: LabRole, port: UInt32, timeout: Duration) async throws -> Bool { false }
    func hasStopped(_ role: LabRole) async throws -> String? { role == self.role ? nil : "not in this machine" }
    let hasReferenceLibrary = true
    let rendezvousTimeout: Duration = .seconds(1)
    let pollInterval: Duration = .milliseconds(10)
}

extension Simulated {
    @Suite(.enabled(if: access("/dev/xen/gntdev", F_OK) == 0, "needs a Xen domain with /dev/xen/gntdev"))
    struct RealXen {
        @Test(arguments: ConformanceSuite.cases.filter(\.isSingleDomain))
        func singleDomainCaseOnThisKernel(_ conformanceCase: ConformanceCase) async throws {
            let world = try LocalKernelWorld()
            let result = await conformanceCase.run(as: world.role, in: world)
            if case .fail = result.outcome { Issue.record("\(result)") }
        }
    }
}
