import XenGnt

/// Descriptor numbers the simulator keeps for itself (domain memory, dma-buf backings, the
/// eventfds that wake a killed process's polls). To a simulated process they do not exist:
/// naming one is `EBADF`, as a number not in its table, so no seam call can close or map them.
enum SimulatorDescriptors {
    private static let numbers = Locked<Set<Int32>>([])

    static func insert(_ fd: Int32) { numbers.withLock { _ = $0.insert(fd) } }

    static func remove(_ fd: Int32) { numbers.withLock { _ = $0.remove(fd) } }

    static func contains(_ fd: Int32) -> Bool { numbers.withLock { $0.contains(fd) } }
}
