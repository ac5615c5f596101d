import CXenGnt
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

/// Every suite of this target is nested in this one, so the tests run one at a time: the
/// leak tests compare the process's open descriptors before and after, which parallel tests
/// would disturb.
@Suite(.serialized) enum Simulated {}

/// A simulated host with the usual cast: a PVH frontend (dom1), a PVH backend (dom2) and a PV
/// Dom0, each running `kernel` as configured.
struct Host {
    let xen: XenSimulation
    let frontend: SimulatedDomain
    let backend: SimulatedDomain
    let dom0: SimulatedDomain

    init(maxGrantFrames: Int = 64, _ configure: (inout SimulatedKernel) -> Void = { _ in }) throws {
        var kernel = SimulatedKernel()
        configure(&kernel)
        xen = XenSimulation(maxGrantFrames: maxGrantFrames)
        dom0 = try xen.addDomain(0, type: .pv, kernel: kernel)
        frontend = try xen.addDomain(1, type: .pvh, kernel: kernel)
        backend = try xen.addDomain(2, type: .pvh, kernel: kernel)
    }

    /// The backend's gntdev.
    func gntdev() throws -> GrantDevice { try GrantDevice(on: backend.system) }
}

/// The descriptors this process has open.
func openDescriptors() -> Set<Int32> {
    guard let directory = opendir("/proc/self/fd") else { return [] }
    defer { closedir(directory) }
    var numbers = Set<Int32>()
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let number = Int32(name) { numbers.insert(number) }
    }
    numbers.remove(dirfd(directory))
    return numbers
}

/// Whether `fd` is open in this process.
func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

/// Runs `body` and returns the XenGntError it throws (recording an issue if it throws nothing).
@discardableResult
func expectFailure(
    _ body: () throws -> Void,
    sourceLocation: SourceLocation = #_sourceLocation
) -> XenGntError? {
    do {
        try body()
        Issue.record("expected a XenGntError", sourceLocation: sourceLocation)
        return nil
    } catch let error as XenGntError {
        return error
    } catch {
        Issue.record("expected a XenGntError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

