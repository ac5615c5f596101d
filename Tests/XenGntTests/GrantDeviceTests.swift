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
            let error = expectFailure { try mapping.withUnsafeMutableBytes { $0[0] = 1 } }
            #expect(error?.cause == .readOnlyMapping)
        }

        @Test func aWritableMapOfAReadOnlyGrantFailsAtMmapAndLeavesNothing() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(1, to: host.backend.id, access: .readOnly)
            let gntdev = try host.gntdev()
            let error = expectFailure { _ = try gntdev.map(refs, from: host.frontend.id) }
            #expect(error?.operation == .mapMemory)
            #expect(error?.errno == .invalidArgument)
            #expect(error?.cause == .badGrants)
            #expect(host.xen.census().grantMaps == 0)
        }

        @Test(arguments: ["invalid ref", "unknown domain", "not granted to this domain", "one bad of two"])
        func badGrantsFailAtMmap(_ variant: String) throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let other = try host.frontend.grantPages(1, to: host.dom0.id)
            let gntdev = try host.gntdev()
            let error = expectFailure {
                switch variant {
                case "invalid ref": _ = try gntdev.map([GrantRef(9999)], from: host.frontend.id)
                case "unknown domain": _ = try gntdev.map(refs, from: DomainID(77))
                case "not granted to this domain": _ = try gntdev.map(other, from: host.frontend.id)
                default: _ = try gntdev.map([refs[0], GrantRef(9999)], from: host.frontend.id)
                }
            }
            #expect(error?.operation == .mapMemory)
            #expect(error?.cause == .badGrants)
            #expect(host.frontend.mapCount(of: refs[0]) == 0)
            #expect(host.xen.census().grantMaps == 0)
        }

        @Test func requestsTheKernelWouldAnswerWithEINVALAreRefusedFirst() throws {
            let host = try Host { $0.gntdevLimit = 8 }
            let gntdev = try host.gntdev()
            #expect(gntdev.perCallLimit == 8)
            let empty = expectFailure { _ = try gntdev.map([GrantRef](), from: host.frontend.id) }
            #expect(empty?.cause == .emptyRequest)
            #expect(empty?.errno == nil)
            let tooMany = expectFailure { _ = try gntdev.map((0..<9).map { GrantRef($0) }, from: host.frontend.id) }
            #expect(tooMany?.cause == .tooManyPages(count: 9, limit: 8))
            #expect(tooMany?.description.contains("xen_gntdev.limit") == true)
            let reserved = expectFailure { _ = try gntdev.map([GrantRef(8)], from: DomainID(0x7FF0)) }
            #expect(reserved?.cause == .reservedDomain(0x7FF0))
            let reservedInList = expectFailure {
                _ = try gntdev.map([ForeignGrant(domain: DomainID(0x7FF2), ref: 8)])
            }
            #expect(reservedInList?.cause == .reservedDomain(0x7FF2))
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
            let error = expectFailure { _ = try gntdev.mappedRange(containing: &local) }
            #expect(error?.cause == .notFound)
            #expect(error?.errno == .invalidArgument)
        }

        @Test func setMaxGrantsIsGoneAndHarmless() throws {
            let host = try Host()
            #expect(try host.gntdev().setMaxGrants(128) == false)
            let error = expectFailure { _ = try host.gntdev().setMaxGrants(0) }
            #expect(error?.operation == .setMaxGrants)
        }

        @Test func openingAMissingDeviceSaysWhatIsMissing() throws {
            let host = try Host { $0.devices = [] }
            let error = expectFailure { _ = try GrantDevice(on: host.backend.system) }
            #expect(error?.operation == .openDevice)
            #expect(error?.errno == .noSuchFileOrDirectory)
            #expect(error?.cause == .deviceMissing(path: "/dev/xen/gntdev"))
            #expect(error?.description.contains("CONFIG_XEN_GNTDEV") == true)
            let allocator = expectFailure { _ = try GrantAllocator(on: host.backend.system) }
            #expect(allocator?.cause == .deviceMissing(path: "/dev/xen/gntalloc"))
        }

        @Test func aPermissionErrorOnOpenSaysSo() throws {
            let host = try Host()
            host.xen.injectFault(.permissionDenied, on: .open)
            let error = expectFailure { _ = try GrantDevice(on: host.backend.system) }
            #expect(error?.cause == .permissionDenied(path: "/dev/xen/gntdev"))
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
            }   // deinit, as if the process had died
            #expect(host.backend.notificationCount(port: port) == 1)
        }

        @Test func invalidNotificationsAreRefusedWithAReason() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let writable = try gntdev.map(host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            let outside = expectFailure { try writable.setUnmapNotification(.clearByte(at: 4096)) }
            #expect(outside?.cause == .outOfRange(offset: 4096, length: 4096))
            let unbound = expectFailure { try writable.setUnmapNotification(.sendEvent(port: 99)) }
            #expect(unbound?.errno == .invalidArgument)
            #expect(unbound?.cause == .eventChannelNotBound(port: 99))
            let readOnly = try gntdev.map(host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id, access: .readOnly)
            let error = expectFailure { try readOnly.setUnmapNotification(.clearByte(at: 0)) }
            #expect(error?.cause == .readOnlyMapping)
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
            let error = expectFailure { try bad.setUnmapNotification(.sendEvent(port: 1234)) }
            #expect(error?.cause == .eventChannelNotBound(port: 1234))
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
                        GrantCopySegment(from: .grant(ForeignGrant(domain: host.frontend.id, ref: refs[0]), offset: 10), to: .local(into.baseAddress!), length: 10),
                        GrantCopySegment(from: .local(from.baseAddress!), to: .grant(ForeignGrant(domain: host.frontend.id, ref: refs[1]), offset: 4000), length: 8),
                        GrantCopySegment(from: .local(from.baseAddress!), to: .grant(ForeignGrant(domain: host.frontend.id, ref: GrantRef(100)), offset: 0), length: 8),
                        GrantCopySegment(from: .local(from.baseAddress!), to: .grant(ForeignGrant(domain: host.frontend.id, ref: readOnly[0]), offset: 0), length: 8),
                        GrantCopySegment(from: .local(from.baseAddress!), to: .grant(ForeignGrant(domain: DomainID(55), ref: refs[1]), offset: 0), length: 8),
                        GrantCopySegment(from: .grant(ForeignGrant(domain: host.frontend.id, ref: GrantRef(40000)), offset: 0), to: .local(into.baseAddress!), length: 1),
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
                    GrantCopySegment(from: .local(local.baseAddress!), to: .grant(ForeignGrant(domain: DomainID(0x7FF1), ref: 8), offset: 0), length: 1),
                ] {
                    var segments = [segment]
                    let error = expectFailure { try gntdev.copy(&segments) }
                    #expect(error?.operation == .grantCopy)
                    #expect(error?.errno == nil)
                }
            }
        }

        @Test func anUnmappedLocalAddressIsEFAULT() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            var segments = [GrantCopySegment(from: .grant(ForeignGrant(domain: host.frontend.id, ref: refs[0]), offset: 0),
                                             to: .local(UnsafeMutableRawPointer(bitPattern: 0x1000)!), length: 4)]
            let error = expectFailure { try host.gntdev().copy(&segments) }
            #expect(error?.errno == .badAddress)
        }
    }
}

/// A collection whose `count` says less than it holds: XenGnt must neither crash nor write past
/// the ioctl argument.
struct UnderstatedRefs: Collection {
    let refs: [GrantRef]
    var startIndex: Int { 0 }
    var endIndex: Int { refs.count }
    var count: Int { 1 }
    subscript(position: Int) -> GrantRef { refs[position] }
    func index(after i: Int) -> Int { i + 1 }
}

extension Simulated.Mapping {
    @Test func aCollectionThatUnderstatesItsCountIsReadOnlyUpToTheCount() throws {
        let host = try Host()
        let refs = try host.frontend.grantPages(3, to: host.backend.id)
        let gntdev = try host.gntdev()
        let mapping = try gntdev.map(UnderstatedRefs(refs: refs), from: host.frontend.id)
        #expect(mapping.pageCount == 1)
        let exported = try gntdev.exportDmaBuf(refs: UnderstatedRefs(refs: refs), from: host.frontend.id)
        #expect(exported.pageCount == 1)
        #expect(host.frontend.mapCount(of: refs[2]) == 0)
    }
}
