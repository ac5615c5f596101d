public import XenGnt

/// A PV device as the toolstack describes it in XenStore: a frontend directory in the frontend
/// domain's home and a backend directory in the backend domain's, each pointing at the other.
///
/// ```
/// /local/domain/<frontend>/device/<type>/<id>/            owner frontend, backend may read
///     backend = /local/domain/<backend>/backend/<type>/<frontend>/<id>
///     backend-id = <backend>
///     state = 1
/// /local/domain/<backend>/backend/<type>/<frontend>/<id>/ owner backend, frontend may read
///     frontend = /local/domain/<frontend>/device/<type>/<id>
///     frontend-id = <frontend>
///     online = 1
///     state = 1
/// ```
///
/// ``create(in:frontendEntries:backendEntries:)`` writes both as libxl's
/// `libxl__device_generic_add` does, which is how a test (or a small toolstack) adds a device
/// that no kernel driver claims, such as the lab's `vxengnt`.
public struct XenDevice: Sendable, Hashable, CustomStringConvertible {
    /// The device type (`vdispl`, `vsnd`, `vxengnt`).
    public var type: String
    /// The domain of the frontend.
    public var frontend: DomainID
    /// The domain of the backend.
    public var backend: DomainID
    /// The device id (`devid`), unique per type in the frontend.
    public var id: Int

    public init(type: String, frontend: DomainID, backend: DomainID, id: Int) {
        self.type = type
        self.frontend = frontend
        self.backend = backend
        self.id = id
    }

    /// `/local/domain/<frontend>/device/<type>/<id>`.
    public var frontendPath: String { "/local/domain/\(frontend.rawValue)/device/\(type)/\(id)" }
    /// `/local/domain/<backend>/backend/<type>/<frontend>/<id>`.
    public var backendPath: String { "/local/domain/\(backend.rawValue)/backend/\(type)/\(frontend.rawValue)/\(id)" }

    public var description: String { "\(type)/\(id) of \(frontend) served by \(backend)" }

    /// Writes both directories, replacing what was there, in one transaction, with the
    /// permissions libxl sets: each end owns its directory (others: none) and the other end may
    /// read it. Needs a privileged connection (Dom0's) or one allowed to write both homes.
    public func create(
        in store: XenStore,
        frontendEntries: [String: String] = [:],
        backendEntries: [String: String] = [:]
    ) async throws(XenGntError) {
        let frontendPermissions = [XenStorePermission(frontend, .none), XenStorePermission(backend, .read)]
        let backendPermissions = [XenStorePermission(backend, .none), XenStorePermission(frontend, .read)]
        try await store.transaction { transaction throws(XenGntError) in
            try await transaction.removeIfPresent(frontendPath)
            try await transaction.makeDirectory(frontendPath)
            try await transaction.setPermissions(frontendPermissions, of: frontendPath)
            try await transaction.write("\(frontendPath)/backend", backendPath)
            let front = ["backend-id": "\(backend.rawValue)", "state": XenbusState.initialising.value].merging(frontendEntries) {
                $1
            }
            for (key, value) in front.sorted(by: { $0.key < $1.key }) {
                try await transaction.write("\(frontendPath)/\(key)", value)
                try await transaction.setPermissions(frontendPermissions, of: "\(frontendPath)/\(key)")
            }
            try await transaction.removeIfPresent(backendPath)
            try await transaction.makeDirectory(backendPath)
            try await transaction.setPermissions(backendPermissions, of: backendPath)
            try await transaction.write("\(backendPath)/frontend", frontendPath)
            let back = ["frontend-id": "\(frontend.rawValue)", "online": "1", "state": XenbusState.initialising.value]
                .merging(backendEntries) { $1 }
            for (key, value) in back.sorted(by: { $0.key < $1.key }) {
                try await transaction.write("\(backendPath)/\(key)", value)
            }
        }
    }

    /// Removes both directories (what libxl does once a device is gone).
    public func remove(in store: XenStore) async throws(XenGntError) {
        try await store.transaction { transaction throws(XenGntError) in
            try await transaction.removeIfPresent(frontendPath)
            try await transaction.removeIfPresent(backendPath)
        }
    }
}

extension XenStoreOperations {
    /// Removes `path`; a missing parent (`ENOENT`) is not an error.
    func removeIfPresent(_ path: String) async throws(XenGntError) {
        do {
            try await remove(path)
        } catch  where error.code == .noSuchNode {
        }
    }
}
