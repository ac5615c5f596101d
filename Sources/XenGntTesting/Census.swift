public import XenGnt

extension XenSimulation {
    /// What the simulated kernels and Xen hold, per domain, so a test can check that nothing
    /// leaked:
    ///
    /// ```swift
    /// #expect(xen.census().isClean, "\(xen.census())")
    /// ```
    public struct Census: Sendable, Hashable, CustomStringConvertible {
        /// What one domain holds.
        public struct Domain: Sendable, Hashable, CustomStringConvertible {
            /// The domain.
            public let id: DomainID
            /// What Xen says of it.
            public var state: DomainState
            /// Descriptor numbers its processes hold.
            public var descriptors = 0
            /// Open files of its kernel not yet released (held by descriptors, mappings or
            /// other kernel objects).
            public var openFiles = 0
            /// Processes alive.
            public var processes = 0
            /// Memory mappings its processes made through the seam.
            public var memoryMappings = 0
            /// gntdev grant maps still requested (not yet unmapped with the ioctl).
            public var grantMaps = 0
            /// gntdev dma-buf exports not yet released.
            public var exports = 0
            /// gntdev dma-buf imports not yet released.
            public var imports = 0
            /// Pages its gntalloc holds (the module's count).
            public var gntallocPages = 0
            /// Entries of its grant table, by grantee.
            public var grantsIssued: [DomainID: Int] = [:]
            /// Pages of domains (usually others) it maps: its maptrack entries.
            public var foreignMappings = 0
            /// Event channel ports bound.
            public var eventChannelPorts = 0
            /// GEM buffer objects of its DRM devices not yet freed.
            public var gemObjects = 0
            /// Framebuffers of its DRM devices not yet removed.
            public var framebuffers = 0
            /// What oopsed its kernel, if it did.
            public var oops: String?

            /// A domain that holds nothing.
            public init(id: DomainID, state: DomainState) {
                self.id = id
                self.state = state
            }

            /// Entries of its grant table, whoever they grant to.
            public var grants: Int { grantsIssued.values.reduce(0, +) }

            /// Nothing held: no descriptor, open file, mapping, grant map, export, import,
            /// gntalloc page, grant or foreign mapping; no oops; not dying. (Processes and
            /// event channel ports do not count: they are the domain's furniture.)
            public var isClean: Bool { leftovers.isEmpty }

            var leftovers: [String] {
                var items: [String] = []
                func add(_ count: Int, _ what: String) {
                    if count > 0 { items.append("\(count) \(what)\(count == 1 ? "" : "s")") }
                }
                if state == .dying { items.append("dying") }
                if let oops { items.append("oops: \(oops)") }
                add(descriptors, "descriptor")
                add(openFiles, "open file")
                add(memoryMappings, "memory mapping")
                add(grantMaps, "gntdev grant map")
                add(exports, "export")
                add(imports, "import")
                add(gntallocPages, "gntalloc page")
                if grants > 0 {
                    let split = grantsIssued.sorted { $0.key < $1.key }.map { "\($0.value) to \($0.key)" }.joined(separator: ", ")
                    items.append("\(grants) grant\(grants == 1 ? "" : "s") (\(split))")
                }
                add(foreignMappings, "foreign mapping")
                add(gemObjects, "GEM object")
                add(framebuffers, "framebuffer")
                return items
            }

            /// `dom2: 1 descriptor, 1 open file, 2 grants (2 to dom1)`, or `dom2: clean`.
            public var description: String {
                let items = leftovers
                return "\(id)\(state == .running ? "" : " (\(state))"): "
                    + (items.isEmpty ? "clean" : items.joined(separator: ", "))
            }
        }

        /// Every domain that is not gone, by id.
        public var domains: [Domain] = []

        /// Nothing at all.
        public init() {}

        /// The domain with `id`.
        public subscript(id: DomainID) -> Domain? { domains.first { $0.id == id } }

        /// Whether no domain holds anything (see ``Domain/isClean``).
        public var isClean: Bool { domains.allSatisfy(\.isClean) }

        /// What is left, per domain; `clean (3 domains)` when nothing is.
        public var description: String {
            let dirty = domains.filter { !$0.isClean }
            if dirty.isEmpty { return "clean (\(domains.count) domain\(domains.count == 1 ? "" : "s"))" }
            return dirty.map(\.description).joined(separator: "; ")
        }

        private func total(_ count: (Domain) -> Int) -> Int { domains.reduce(0) { $0 + count($1) } }

        /// Descriptors, every domain together.
        public var descriptors: Int { total(\.descriptors) }
        /// Open files, every domain together.
        public var openFiles: Int { total(\.openFiles) }
        /// Live processes, every domain together.
        public var processes: Int { total(\.processes) }
        /// Memory mappings, every domain together.
        public var memoryMappings: Int { total(\.memoryMappings) }
        /// gntdev grant maps, every domain together.
        public var grantMaps: Int { total(\.grantMaps) }
        /// gntdev dma-buf exports, every domain together.
        public var exports: Int { total(\.exports) }
        /// gntdev dma-buf imports, every domain together.
        public var imports: Int { total(\.imports) }
        /// gntalloc pages, every domain's kernel together.
        public var gntallocPages: Int { total(\.gntallocPages) }
        /// Grant-table entries, every domain together.
        public var grants: Int { total(\.grants) }
        /// Maptrack entries, every domain together.
        public var foreignMappings: Int { total(\.foreignMappings) }
        /// GEM objects, every domain together.
        public var gemObjects: Int { total(\.gemObjects) }
        /// Framebuffers, every domain together.
        public var framebuffers: Int { total(\.framebuffers) }
        /// Event channel ports bound, every domain together.
        public var eventChannelPorts: Int { total(\.eventChannelPorts) }
    }

    /// What every domain holds now.
    public func census() -> Census {
        machine.withLock { machine in
            var census = Census()
            for kernel in machine.kernels.values.sorted(by: { $0.domain.id < $1.domain.id }) where kernel.domain.state != .gone {
                census.domains.append(kernel.census)
            }
            return census
        }
    }
}

extension DomainKernel {
    var census: XenSimulation.Census.Domain {
        var entry = XenSimulation.Census.Domain(id: DomainID(domain.id), state: domain.state)
        entry.processes = processes.count
        for process in processes.values {
            entry.descriptors += process.descriptors.count
            entry.memoryMappings += process.areas.count
        }
        entry.openFiles = liveFiles.count
        for file in liveFiles.values {
            if let gntdev = file as? GntdevFile {
                entry.grantMaps += gntdev.maps.count
                entry.imports += gntdev.imports.count
            } else if let buffer = file as? DmaBufFile, case .gntdev = buffer.exporter {
                entry.exports += 1
            }
        }
        entry.gntallocPages = gntallocPages
        for grant in domain.grantTable.entries.values { entry.grantsIssued[DomainID(grant.grantee), default: 0] += 1 }
        entry.foreignMappings = domain.maptrack.count
        entry.eventChannelPorts = domain.ports.count
        entry.oops = oops
        for device in drm.values {
            entry.gemObjects += device.gemObjects
            entry.framebuffers += device.framebuffers.count
        }
        return entry
    }
}
