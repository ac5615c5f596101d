public import XenGnt
public import XenGntBackend

/// The host's xenstored, as tests see it.
///
/// Every simulated host runs one, beside the hypervisor, as C xenstored 4.17 behaves (node
/// permissions, transactions with conflicts, watches including `@introduceDomain` and
/// `@releaseDomain`, the quotas of unprivileged domains). Dom0 reaches it through
/// `/var/run/xenstored/socket` (privileged), every domain through `/dev/xen/xenbus`, so
/// `XenStore(on: simulation.system(of: id))` works in any simulated domain. Each new domain gets
/// the home the toolstack writes (`/local/domain/<id>` with `domid`, `name` and the directories
/// the domain may write); destroying it fires `@releaseDomain` and removes the home.
extension XenSimulation {
    /// xenstored's limits for unprivileged domains; Xen 4.17's C xenstored defaults.
    public struct XenStoreQuotas: Sendable, Hashable {
        /// `-E`: nodes a domain may own (the lab's xenstored raises it to 16384).
        public var nodes = 1000
        /// `-W`: watches a domain may have, counting the 5 its Linux registers itself (more
        /// are refused with `E2BIG`).
        public var watches = 128
        /// `-t`: transactions a connection (through the xenbus device: the domain) may have
        /// open beyond which a start is refused (`ENOSPC` from the twelfth).
        public var transactions = 10
        /// `-S`: a node's size limit, counting a 24-byte header, 8 bytes per permission, the
        /// value and the children's names (`ENOSPC`).
        public var nodeSize = 2048
        /// `-A`: permissions per node.
        public var permissions = 5

        public init() {}
    }

    /// xenstored's quotas; changes apply to the next request.
    public var xenstoreQuotas: XenStoreQuotas {
        get {
            machine.withLock { machine in
                let q = machine.xenstored.quotas
                var quotas = XenStoreQuotas()
                quotas.nodes = q.nodes
                quotas.watches = q.watches
                quotas.transactions = q.transactions
                quotas.nodeSize = q.nodeSize
                quotas.permissions = q.permissions
                return quotas
            }
        }
        set {
            machine.withLock { machine in
                machine.xenstored.quotas = XenStoreDaemon.Quotas(
                    nodes: newValue.nodes,
                    watches: newValue.watches,
                    transactions: newValue.transactions,
                    nodeSize: newValue.nodeSize,
                    permissions: newValue.permissions
                )
            }
        }
    }

    /// Writes a node as the toolstack does (privileged, watches fire), and sets its
    /// permissions if given: the lab's Dom0 makes `/xengnt` with `[b0]` this way
    /// (`xenstore-write`, `xenstore-chmod`).
    public func xenstoreWrite(_ path: String, _ value: String, permissions: [XenStorePermission]? = nil) {
        machine.withLock { machine in
            machine.xenstored.toolstackWrite(path, value: Array(value.utf8), permissions: permissions?.map(\.description))
        }
    }

    /// The value of a node, as Dom0 would read it, or `nil` if it does not exist.
    public func xenstoreValue(_ path: String) -> String? {
        machine.withLock { machine in machine.xenstored.node(path).map { String(decoding: $0.value, as: UTF8.self) } }
    }

    /// The children of a node, in the order they were created, or `nil` if it does not exist.
    public func xenstoreChildren(_ path: String) -> [String]? {
        machine.withLock { machine in machine.xenstored.node(path)?.children }
    }

    /// The permissions of a node, or `nil` if it does not exist.
    public func xenstorePermissions(_ path: String) -> [XenStorePermission]? {
        machine.withLock { machine in
            machine.xenstored.node(path)?.permissions.compactMap { XenStorePermission($0.text) }
        }
    }

    /// How many watches the connections of `domain` have registered (its kernel's own not
    /// counted), and how many transactions they have open: what a test checks is back to zero.
    public func xenstoreActivity(of domain: DomainID) -> (watches: Int, transactions: Int) {
        machine.withLock { machine in
            let connections = machine.xenstored.connections.filter { $0.domain == domain.rawValue }
            return (connections.reduce(0) { $0 + $1.watches.count }, connections.reduce(0) { $0 + $1.transactions.count })
        }
    }

    /// Adds a PV device as the toolstack does: both directories, libxl's permissions
    /// (`XenDevice.create(in:frontendEntries:backendEntries:)`), written through Dom0's
    /// xenstored socket, so domain 0 must exist.
    public func addDevice(
        _ device: XenDevice,
        frontendEntries: [String: String] = [:],
        backendEntries: [String: String] = [:]
    ) async throws(XenGntError) {
        let store = try XenStore(on: system(of: .dom0))
        do {
            try await device.create(in: store, frontendEntries: frontendEntries, backendEntries: backendEntries)
            await store.close()
        } catch {
            await store.close()
            throw error
        }
    }

    /// Removes a device's two directories, as the toolstack does when it unplugs it.
    public func removeDevice(_ device: XenDevice) async throws(XenGntError) {
        let store = try XenStore(on: system(of: .dom0))
        do {
            try await device.remove(in: store)
            await store.close()
        } catch {
            await store.close()
            throw error
        }
    }
}
