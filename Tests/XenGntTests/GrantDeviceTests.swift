import SystemPackage
import Testing
import XenGnt
import XenGntTesting

extension Simulated {
    @Suite struct Mapping {
        @Test func mappedBytesAliasTheGrantingDomainsPagesBothWays() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(3, to: host.backend.id)
            try host.frontend.write(Array("from the frontend".utf8), toGrant: refs[2], at: 100)
            let mapping = try host.gntdev().map(refs, from: host.frontend.id)
            #expect(mapping.pageCount == 3)
            #expect(mapping.byteCount == 3 * 4096)
            let seen = mapping.withUnsafeBytes { Array($0[(2 * 4096 + 100)..<(2 * 4096 + 117)]) }
            #expect(String(decoding: seen, as: UTF8.self) == "from the frontend")
            try mapping.withUnsafeMutableBytes { bytes in
                bytes[4096 + 7] = 0xAB
            }
            #expect(try host.frontend.read(grant: refs[1], at: 7, count: 1) == [0xAB])
            #expect(host.frontend.mapCount(of: refs[0]) == 1)
            try mapping.unmap()
            #expect(host.frontend.mapCount(of: refs[0]) == 0)
            #expect(host.xen.census().memoryMappings == 0)
        }

        @Test func mapsGrantsOfSeveralDomainsAsOneRegion() throws {
            let host = try Host()
            let third = try host.xen.addDomain(3, type: .pvh)
            let a = try host.frontend.grantPages(1, to: host.backend.id)
            let b = try third.grantPages(1, to: host.backend.id)
            try third.write([42], toGrant: b[0])
            let mapping = try host.gntdev().map([
                ForeignGrant(domain: host.frontend.id, ref: a[0]),
                ForeignGrant(domain: third.id, ref: b[0]),
            ])
            #expect(mapping.withUnsafeBytes { $0[4096] } == 42)
        }

        @Test func readOnlyMappingsRefuseWritesWithoutFaulting() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(1, to: host.backend.id, access: .readOnly)
            let mapping = try host.gntdev().map(refs, from: host.frontend.id, access: .readOnly)
            #expect(mapping.access == .readOnly)
            let error = #expect(throws: XenGntError.self) { try mapping.withUnsafeMutableBytes { $0[0] = 1 } }
            #expect(error?.code == .readOnlyMapping && error?.operation == .writeMapping)
            #expect(error?.description.contains("notification") == false)
        }

        @Test func aWritableMapOfAReadOnlyGrantFailsAtMmapAndLeavesNothing() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(1, to: host.backend.id, access: .readOnly)
            let gntdev = try host.gntdev()
            let error = #expect(throws: XenGntError.self) { _ = try gntdev.map(refs, from: host.frontend.id) }
            #expect(error?.call == "mmap")
            #expect(error?.errno == .invalidArgument)
            #expect(error?.code == .badGrants)
            #expect(host.xen.census().grantMaps == 0)
        }

        enum BadMap: CaseIterable, Sendable { case invalidRef, unknownDomain, notGrantedToThisDomain, oneBadOfTwo }

        @Test(arguments: BadMap.allCases)
        func badGrantsFailAtMmap(_ variant: BadMap) throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let other = try host.frontend.grantPages(1, to: host.dom0.id)
            let gntdev = try host.gntdev()
            let error = #expect(throws: XenGntError.self) {
                switch variant {
                case .invalidRef: _ = try gntdev.map([GrantRef(9999)], from: host.frontend.id)
                case .unknownDomain: _ = try gntdev.map(refs, from: DomainID(77))
                case .notGrantedToThisDomain: _ = try gntdev.map(other, from: host.frontend.id)
                case .oneBadOfTwo: _ = try gntdev.map([refs[0], GrantRef(9999)], from: host.frontend.id)
                }
            }
            #expect(error?.call == "mmap")
            #expect(error?.code == .badGrants)
            #expect(host.frontend.mapCount(of: refs[0]) == 0)
            #expect(host.xen.census().grantMaps == 0)
        }

        @Test func anOverLimitRequestIsExplainedByTheLimitReadWhenTheKernelRefused() throws {
            let host = try Host { $0.gntdevLimit = 8 }
            let gntdev = try host.gntdev()
            #expect(gntdev.perCallLimit == 8)
            let refs = try host.frontend.grantPages(9, to: host.backend.id)
            let tooMany = #expect(throws: XenGntError.self) { _ = try gntdev.map(refs, from: host.frontend.id) }
            #expect(tooMany?.code == .tooManyPages && tooMany?.count == 9 && tooMany?.limit == 8)
            #expect(tooMany?.errno == .invalidArgument && tooMany?.call == "IOCTL_GNTDEV_MAP_GRANT_REF")
            #expect(tooMany?.description.contains("xen_gntdev.limit") == true)
            // The limit is read when the kernel refuses, not cached at open: lowering it later
            // is explained correctly, and raising it lets the same request through.
            host.backend.kernel.gntdevLimit = 4
            let export = #expect(throws: XenGntError.self) {
                _ = try gntdev.exportDmaBuf(refs: refs[0..<5], from: host.frontend.id)
            }
            #expect(export?.code == .tooManyPages && export?.limit == 4)
            host.backend.kernel.gntdevLimit = 16
            #expect(try gntdev.map(refs, from: host.frontend.id).pageCount == 9)
        }

        @Test func emptyAndReservedRequestsAreRefusedBeforeTheKernel() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let empty = #expect(throws: XenGntError.self) { _ = try gntdev.map([GrantRef](), from: host.frontend.id) }
            #expect(empty?.code == .emptyRequest)
            #expect(empty?.errno == nil && empty?.call == nil)
            let reserved = #expect(throws: XenGntError.self) { _ = try gntdev.map([GrantRef(8)], from: DomainID(0x7FF0)) }
            #expect(reserved?.code == .reservedDomain && reserved?.domain == DomainID(0x7FF0))
            let reservedInList = #expect(throws: XenGntError.self) {
                _ = try gntdev.map([ForeignGrant(domain: DomainID(0x7FF2), ref: 8)])
            }
            #expect(reservedInList?.code == .reservedDomain && reservedInList?.domain == DomainID(0x7FF2))
        }

        @Test func theMappedRangeOfAnAddressIsFound() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let first = try gntdev.map(host.frontend.grantPages(2, to: host.backend.id), from: host.frontend.id)
            let second = try gntdev.map(host.frontend.grantPages(3, to: host.backend.id), from: host.frontend.id)
            let range = try gntdev.mappedRange(containing: second.baseAddress + 5000)
            #expect(range.offset == second.offset)
            #expect(range.pageCount == 3)
            #expect(try gntdev.mappedRange(containing: first.baseAddress).pageCount == 2)
            var local = 0
            let error = #expect(throws: XenGntError.self) { _ = try gntdev.mappedRange(containing: &local) }
            #expect(error?.code == .notFound)
            #expect(error?.call == "IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR")
            #expect(error?.errno == .invalidArgument)
        }

        @Test func setMaxGrantsIsGoneAndHarmless() throws {
            let host = try Host()
            #expect(try host.gntdev().setMaxGrants(128) == false)
            let error = #expect(throws: XenGntError.self) { _ = try host.gntdev().setMaxGrants(0) }
            #expect(error?.operation == .setMaxGrants)
        }

        @Test func openingAMissingDeviceSaysWhatIsMissing() throws {
            let host = try Host { $0.devices = [] }
            let error = #expect(throws: XenGntError.self) { _ = try GrantDevice(on: host.backend.system) }
            #expect(error?.operation == .openDevice)
            #expect(error?.errno == .noSuchFileOrDirectory)
            #expect(error?.code == .deviceMissing && error?.path == "/dev/xen/gntdev" && error?.call == "open")
            #expect(error?.description.contains("CONFIG_XEN_GNTDEV") == true)
            let allocator = #expect(throws: XenGntError.self) { _ = try GrantAllocator(on: host.backend.system) }
            #expect(allocator?.code == .deviceMissing && allocator?.path == "/dev/xen/gntalloc")
            #expect(allocator?.description.contains("CONFIG_XEN_GRANT_DEV_ALLOC") == true)
        }

        @Test func aPermissionErrorOnOpenSaysSo() throws {
            let host = try Host()
            host.xen.injectFault(.permissionDenied, on: .open)
            let error = #expect(throws: XenGntError.self) { _ = try GrantDevice(on: host.backend.system) }
            #expect(error?.code == .permissionDenied && error?.path == "/dev/xen/gntdev")
        }
    }

    @Suite struct UnmapNotifications {
        @Test func clearByteIsSeenByTheGrantingDomainWhenTheMapGoes() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            try host.frontend.write([0xFF], toGrant: refs[1], at: 12)
            let mapping = try host.gntdev().map(refs, from: host.frontend.id)
            try mapping.setUnmapNotification(.clearByte(at: 4096 + 12))
            #expect(try host.frontend.read(grant: refs[1], at: 12, count: 1) == [0xFF])
            try mapping.unmap()
            #expect(try host.frontend.read(grant: refs[1], at: 12, count: 1) == [0])
        }

        @Test func sendEventFiresWhenTheMapGoesEvenWithoutUnmap() throws {
            let host = try Host()
            let port = host.backend.bindEventChannel()
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            do {
                let mapping = try host.gntdev().map(refs, from: host.frontend.id)
                try mapping.setUnmapNotification(.sendEvent(port: port))
                #expect(host.backend.notificationCount(port: port) == 0)
            }  // deinit, as if the process had died
            #expect(host.backend.notificationCount(port: port) == 1)
        }

        @Test func invalidNotificationsAreRefusedWithAReason() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let writable = try gntdev.map(host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            let outside = #expect(throws: XenGntError.self) { try writable.setUnmapNotification(.clearByte(at: 4096)) }
            #expect(outside?.code == .outOfRange && outside?.offset == 4096 && outside?.length == 4096)
            let unbound = #expect(throws: XenGntError.self) { try writable.setUnmapNotification(.sendEvent(port: 99)) }
            #expect(unbound?.errno == .invalidArgument)
            #expect(unbound?.code == .eventChannelNotBound && unbound?.port == 99)
            let readOnly = try gntdev.map(
                host.frontend.grantPages(1, to: host.backend.id),
                from: host.frontend.id,
                access: .readOnly
            )
            let error = #expect(throws: XenGntError.self) { try readOnly.setUnmapNotification(.clearByte(at: 0)) }
            #expect(error?.code == .notifyNeedsWritableMapping)
            #expect(error?.description.contains("clear-byte") == true)
            try readOnly.setUnmapNotification(.none)
        }

        @Test func gntallocNotificationClearsTheSharedByteForThePeer() throws {
            let host = try Host()
            let allocator = try GrantAllocator(on: host.dom0.system)
            let shared = try allocator.share(pages: 1, with: host.backend.id)
            shared.withUnsafeMutableBytes { $0[3] = 0x77 }
            let peer = try host.gntdev().map(shared.refs, from: host.dom0.id, access: .readOnly)
            try shared.setUnmapNotification(.clearByte(at: 3))
            let port = host.dom0.bindEventChannel()
            try shared.setUnmapNotification(UnmapNotification(clearByteAt: 3, eventChannelPort: port))
            #expect(peer.withUnsafeBytes { $0[3] } == 0x77)
            try shared.unshare()
            #expect(peer.withUnsafeBytes { $0[3] } == 0)
            #expect(host.dom0.notificationCount(port: port) == 1)
            let bad = try allocator.share(pages: 1, with: host.backend.id)
            let error = #expect(throws: XenGntError.self) { try bad.setUnmapNotification(.sendEvent(port: 1234)) }
            #expect(error?.code == .eventChannelNotBound && error?.port == 1234)
        }
    }

    @Suite struct GrantCopy {
        @Test func copiesBothWaysWithPerSegmentStatus() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let readOnly = try host.frontend.grantPages(1, to: host.backend.id, access: .readOnly)
            try host.frontend.write(Array("grant copy".utf8), toGrant: refs[0], at: 10)
            var inbound = [UInt8](repeating: 0, count: 10)
            var outbound = Array("backend!".utf8)
            try inbound.withUnsafeMutableBytes { into in
                try outbound.withUnsafeMutableBytes { from in
                    var segments = [
                        GrantCopySegment(
                            from: .grant(ForeignGrant(domain: host.frontend.id, ref: refs[0]), offset: 10),
                            to: .local(into.baseAddress!),
                            length: 10
                        ),
                        GrantCopySegment(
                            from: .local(from.baseAddress!),
                            to: .grant(ForeignGrant(domain: host.frontend.id, ref: refs[1]), offset: 4000),
                            length: 8
                        ),
                        GrantCopySegment(
                            from: .local(from.baseAddress!),
                            to: .grant(ForeignGrant(domain: host.frontend.id, ref: GrantRef(100)), offset: 0),
                            length: 8
                        ),
                        GrantCopySegment(
                            from: .local(from.baseAddress!),
                            to: .grant(ForeignGrant(domain: host.frontend.id, ref: readOnly[0]), offset: 0),
                            length: 8
                        ),
                        GrantCopySegment(
                            from: .local(from.baseAddress!),
                            to: .grant(ForeignGrant(domain: DomainID(55), ref: refs[1]), offset: 0),
                            length: 8
                        ),
                        GrantCopySegment(
                            from: .grant(ForeignGrant(domain: host.frontend.id, ref: GrantRef(40000)), offset: 0),
                            to: .local(into.baseAddress!),
                            length: 1
                        ),
                    ]
                    try host.gntdev().copy(&segments)
                    #expect(segments.map(\.status) == [.okay, .okay, .generalError, .generalError, .badDomain, .badGrantRef])
                    #expect(segments[2].status.description == "GNTST_general_error")
                }
            }
            #expect(String(decoding: inbound, as: UTF8.self) == "grant copy")
            #expect(try host.frontend.read(grant: refs[1], at: 4000, count: 8) == Array("backend!".utf8))
            var none: [GrantCopySegment] = []
            try host.gntdev().copy(&none)
        }

        @Test func segmentsTheKernelRefusesAreRefusedFirst() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            var byte: UInt8 = 0
            withUnsafeMutableBytes(of: &byte) { local in
                let grant = ForeignGrant(domain: host.frontend.id, ref: 8)
                for segment in [
                    GrantCopySegment(from: .local(local.baseAddress!), to: .local(local.baseAddress!), length: 1),
                    GrantCopySegment(from: .grant(grant, offset: 4095), to: .local(local.baseAddress!), length: 2),
                    GrantCopySegment(from: .local(local.baseAddress!), to: .grant(grant, offset: 0), length: 4097),
                    GrantCopySegment(
                        from: .local(local.baseAddress!),
                        to: .grant(ForeignGrant(domain: DomainID(0x7FF1), ref: 8), offset: 0),
                        length: 1
                    ),
                ] {
                    var segments = [segment]
                    let error = #expect(throws: XenGntError.self) { try gntdev.copy(&segments) }
                    #expect(error?.operation == .grantCopy)
                    #expect(error?.errno == nil)
                }
            }
        }

        @Test func anUnmappedLocalAddressIsEFAULT() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            var segments = [
                GrantCopySegment(
                    from: .grant(ForeignGrant(domain: host.frontend.id, ref: refs[0]), offset: 0),
                    to: .local(UnsafeMutableRawPointer(bitPattern: 0x1000)!),
                    length: 4
                )
            ]
            let error = #expect(throws: XenGntError.self) { try host.gntdev().copy(&segments) }
            #expect(error?.errno == .badAddress)
        }
    }
}

/// A collection whose `count` is not what it yields (a hostile or buggy caller's collection).
struct MisstatedRefs: Collection {
    let refs: [GrantRef]
    let claimed: Int
    var startIndex: Int { 0 }
    var endIndex: Int { refs.count }
    var count: Int { claimed }
    subscript(position: Int) -> GrantRef { refs[position] }
    func index(after i: Int) -> Int { i + 1 }
}

/// Like ``MisstatedRefs`` for (domain, ref) pairs.
struct MisstatedGrants: Collection {
    let grants: [ForeignGrant]
    let claimed: Int
    var startIndex: Int { 0 }
    var endIndex: Int { grants.count }
    var count: Int { claimed }
    subscript(position: Int) -> ForeignGrant { grants[position] }
    func index(after i: Int) -> Int { i + 1 }
}

extension Simulated.Mapping {
    @Test(arguments: [1, 2, 4, 9])
    func aCollectionWhoseCountIsNotWhatItYieldsIsRefusedBeforeTheKernel(claimed: Int) throws {
        let host = try Host()
        let refs = try host.frontend.grantPages(3, to: host.backend.id)
        let gntdev = try host.gntdev()
        let recorder = SeamRecorder(host.backend.system)
        let recorded = try GrantDevice(on: recorder.system)
        let before = recorder.count
        for error in [
            #expect(throws: XenGntError.self) {
                _ = try gntdev.map(MisstatedRefs(refs: refs, claimed: claimed), from: host.frontend.id)
            },
            #expect(throws: XenGntError.self) {
                _ = try recorded.map(MisstatedRefs(refs: refs, claimed: claimed), from: host.frontend.id)
            },
            #expect(throws: XenGntError.self) {
                _ = try recorded.map(
                    MisstatedGrants(grants: refs.map { ForeignGrant(domain: host.frontend.id, ref: $0) }, claimed: claimed)
                )
            },
            #expect(throws: XenGntError.self) {
                _ = try recorded.exportDmaBuf(refs: MisstatedRefs(refs: refs, claimed: claimed), from: host.frontend.id)
            },
        ] {
            #expect(error?.code == .countMismatch && error?.count == claimed && error?.actualCount == 3)
            #expect(error?.errno == nil)
        }
        #expect(recorder.count == before, "nothing reached the kernel")
        #expect(refs.allSatisfy { host.frontend.mapCount(of: $0) == 0 })
    }
}
