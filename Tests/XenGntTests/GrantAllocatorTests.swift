import SystemPackage
import Testing
import XenGnt
import XenGntTesting

extension Simulated {
    @Suite struct Share {
        @Test func sharedPagesAreMappedByThePeerWithBytesBothWays() throws {
            let host = try Host()
            let allocator = try GrantAllocator(on: host.dom0.system)
            #expect(allocator.globalLimit == 1024)
            let shared = try allocator.share(pages: 2, with: host.frontend.id)
            #expect(shared.refs.count == 2)
            #expect(shared.pageCount == 2 && shared.byteCount == 8192)
            #expect(shared.domain == host.frontend.id)
            shared.withUnsafeMutableBytes { $0[4096 + 1] = 0x11 }
            let peer = try GrantDevice(on: host.frontend.system).map(shared.refs, from: host.dom0.id)
            #expect(peer.withUnsafeBytes { $0[4096 + 1] } == 0x11)
            try peer.withUnsafeMutableBytes { $0[2] = 0x22 }
            #expect(shared.withUnsafeBytes { $0[2] } == 0x22)
            #expect(host.xen.census().gntallocPages == 2)
            try peer.unmap()
            try shared.unshare()
            #expect(host.xen.census().gntallocPages == 0)
            #expect(host.xen.census().grants == 0)
        }

        @Test func aReadOnlyShareCannotBeMappedWritable() throws {
            let host = try Host()
            let shared = try GrantAllocator(on: host.dom0.system).share(pages: 1, with: host.frontend.id, access: .readOnly)
            let peer = try GrantDevice(on: host.frontend.system)
            #expect(#expect(throws: XenGntError.self) { _ = try peer.map(shared.refs, from: host.dom0.id) }?.code == .badGrants)
            let mapping = try peer.map(shared.refs, from: host.dom0.id, access: .readOnly)
            #expect(mapping.access == .readOnly)
        }

        @Test func theGlobalLimitIsNamedWithItsModuleParameter() throws {
            let host = try Host { $0.gntallocLimit = 8 }
            let allocator = try GrantAllocator(on: host.dom0.system)
            let frame = #expect(throws: XenGntError.self) { _ = try allocator.share(pages: 2025, with: host.frontend.id) }
            #expect(frame?.errno == .noSpace && frame?.call == "IOCTL_GNTALLOC_ALLOC_GREF")
            #expect(frame?.code == .gntallocLimit && frame?.limit == 8 && frame?.count == 2025)
            #expect(frame?.description.contains("xen_gntalloc") == true)
            let first = try allocator.share(pages: 6, with: host.frontend.id)
            let other = try GrantAllocator(on: host.dom0.system)
            let error = #expect(throws: XenGntError.self) { _ = try other.share(pages: 3, with: host.frontend.id) }
            #expect(error?.errno == .noSpace, "the limit is global to the domain: another file's pages count")
            #expect(error?.code == .gntallocLimit && error?.limit == 8)
            try first.unshare()
            _ = try other.share(pages: 3, with: host.frontend.id)
        }

        @Test func badRequestsAreRefusedFirst() throws {
            let host = try Host()
            let allocator = try GrantAllocator(on: host.dom0.system)
            #expect(
                #expect(throws: XenGntError.self) { _ = try allocator.share(pages: 0, with: host.frontend.id) }?.code
                    == .emptyRequest
            )
            #expect(
                #expect(throws: XenGntError.self) { _ = try allocator.share(pages: 1, with: DomainID(0x7FF5)) }?.domain
                    == DomainID(0x7FF5)
            )
        }

        @Test func sharingWithADomainThatDoesNotExistSucceeds() throws {
            let host = try Host()
            let shared = try GrantAllocator(on: host.dom0.system).share(pages: 1, with: DomainID(444))
            #expect(host.dom0.grantee(of: shared.refs[0]) == DomainID(444))
        }

        @Test func unsharingWhileThePeerMapsDefersTheEndOfAccess() throws {
            let host = try Host()
            let shared = try GrantAllocator(on: host.dom0.system).share(pages: 1, with: host.frontend.id)
            let ref = shared.refs[0]
            let peer = try GrantDevice(on: host.frontend.system).map([ref], from: host.dom0.id)
            try shared.unshare()
            #expect(host.dom0.isGranted(ref))
            #expect(host.xen.census().gntallocPages == 0, "the page left gntalloc's count at once")
            try peer.unmap()
            #expect(!host.dom0.isGranted(ref))
        }
    }
}
