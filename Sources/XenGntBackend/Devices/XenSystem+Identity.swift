public import XenGnt

extension XenSystem {
    /// This system, knowing the id of the domain it runs in, read from XenStore's `domid` key
    /// (see ``XenStoreOperations/domainID()``).
    ///
    /// XenGnt uses the id to refuse what would harm this domain: in an x86 PVH or HVM domain,
    /// mapping or exporting grants the domain issued itself shows the wrong page and later
    /// crashes the kernel, so `GrantDevice` opened on the returned system refuses it
    /// (`XenGntError/Code/ownGrants`) before asking the kernel.
    ///
    /// ```swift
    /// let system = try await XenSystem.kernel.identified()
    /// let gntdev = try GrantDevice(on: system)
    /// ```
    public func identified(using store: XenStore) async throws(XenGntError) -> XenSystem {
        identifying(as: try await store.domainID())
    }

    /// This system, knowing its domain id, read through a XenStore connection opened and closed
    /// for the purpose.
    public func identified() async throws(XenGntError) -> XenSystem {
        let store = try XenStore(on: self)
        do {
            let identified = try await identified(using: store)
            await store.close()
            return identified
        } catch {
            await store.close()
            throw error
        }
    }
}
