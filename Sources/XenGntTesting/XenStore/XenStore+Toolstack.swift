import XenGntBackend

/// The toolstack's part in XenStore: what libxl (`libxl__domain_make`, `libxl__build_post`) and,
/// for Dom0, `xen-init-dom0` write when a domain is created, and what `xl destroy` removes.
extension XenStoreDaemon {
    /// A privileged connection no watch is registered on, for the toolstack's writes.
    private var toolstack: Scope {
        Scope(
            daemon: self,
            connection: XenStoreConnectionState(domain: 0, privileged: true, viaKernel: false) {},
            transaction: nil
        )
    }

    /// The domain's home and the nodes it may write, with libxl's permissions: the home,
    /// `cpu`, `memory`, `device`, `control` and `domid` owned by Dom0 and readable by the domain;
    /// `data`, `drivers`, `feature`, `attr`, `error`, `control/shutdown`, ... owned by the
    /// domain. Then xenstored is told of the domain (`@introduceDomain`); a DomU's Linux
    /// registers its own 5 watches.
    func createHome(of domain: UInt16) {
        let scope = toolstack
        let home = "/local/domain/\(domain)"
        let readOnly = domain == 0 ? ["n0"] : ["n0", "r\(domain)"]
        let readWrite = ["n\(domain)"]
        func node(_ path: String, _ value: String = "", permissions: [String]) {
            try? scope.write(path, value: Array(value.utf8))
            try? scope.setPermissions([path] + permissions)
        }
        node(home, permissions: readOnly)
        node("\(home)/domid", "\(domain)", permissions: readOnly)
        node("\(home)/name", domain == 0 ? "Domain-0" : "domain-\(domain)", permissions: readOnly)
        guard domain != 0 else { return }
        for name in ["cpu", "memory", "device", "control"] { node("\(home)/\(name)", permissions: readOnly) }
        for name in [
            "device/suspend/event-channel", "control/shutdown", "control/feature-poweroff", "control/feature-reboot",
            "control/feature-suspend", "control/sysrq", "data", "drivers", "feature", "attr", "error",
        ] {
            node("\(home)/\(name)", permissions: readWrite)
        }
        kernelWatches[domain] = 5
        introduce(domain)
    }

    /// A privileged write, and permissions if given.
    func toolstackWrite(_ path: String, value: [UInt8], permissions: [String]?) {
        let scope = toolstack
        try? scope.write(path, value: value)
        if let permissions { try? scope.setPermissions([path] + permissions) }
    }

    /// `xl destroy`: xenstored forgets the domain (`@releaseDomain`) and the toolstack removes
    /// its home (with the frontend directories in it). Backend directories of its devices that
    /// the toolstack does not know stay, as in the lab.
    func removeHome(of domain: UInt16) {
        kernelWatches[domain] = nil
        release(domain)
        try? toolstack.remove("/local/domain/\(domain)")
    }
}
