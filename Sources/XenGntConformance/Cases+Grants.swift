import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

extension ConformanceSuite {
    static let grantCases: [ConformanceCase] = [
        ConformanceCase(
            "probe",
            "the capability probe names the guest type, the devices, the dma-buf ioctls and the limits",
            each: LabRole.permanent
        ) { peer in
            let found = XenCapabilities.probe(on: peer.system)
            try check(found.isXenDomain, "not a Xen domain")
            try check(found.guestType == peer.role.guestType, "guest type \(String(describing: found.guestType))")
            try check(found.gntdev == .available && found.gntalloc == .available, "devices \(found.gntdev) \(found.gntalloc)")
            try check(found.dmaBufIoctls == true, "dma-buf ioctls missing")
            try check(found.export == (peer.role == .pvh ? .uncertain : .refusedInPV), "export \(found.export)")
            try check(found.gntdevLimit == 65536, "gntdev limit \(String(describing: found.gntdevLimit))")
            try check(
                (found.gntallocLimit ?? 0) >= 2025,
                "gntalloc limit \(String(describing: found.gntallocLimit)) is below one 1080p frame"
            )
        },

        ConformanceCase(
            "set-max-grants",
            "IOCTL_GNTDEV_SET_MAX_GRANTS is gone since 5.5: ENOTTY, harmless",
            each: LabRole.permanent
        ) { peer in
            try check(try GrantDevice(on: peer.system).setMaxGrants(128) == false, "the kernel took the limit")
            let raw = Raw(peer.system)
            let fd = try raw.open("/dev/xen/gntdev")
            defer { raw.close(fd) }
            let result = raw.ioctl(
                fd,
                cxg_request_gntdev_set_max_grants(),
                size: 4,
                fill: { $0.storeBytes(of: UInt32(8), as: UInt32.self) },
                read: { _ in () }
            )
            try check(result, fails: .inappropriateIOCTLForDevice, "SET_MAX_GRANTS")
        },

        ConformanceCase(
            "share-map",
            "Dom0 shares pages with gntalloc, each DomU maps them with gntdev; bytes are seen both ways",
            parts: [
                .dom0: { peer in
                    let allocator = try GrantAllocator(on: peer.system)
                    for domU in [LabRole.pv, .pvh] {
                        let shared = try allocator.share(pages: 4, with: peer.id(of: domU))
                        shared.withUnsafeMutableBytes { $0.copyBytes(from: pattern(domU == .pv ? 1 : 2, count: 4 * 4096)) }
                        try await peer.publish(refs: shared.refs, as: "refs-\(domU)")
                        try await peer.wait(for: "written", from: domU)
                        try check(shared.withUnsafeBytes { $0[3 * 4096 + 9] } == 0xA5, "\(domU)'s write is not visible in Dom0")
                        try await peer.publish("checked-\(domU)")
                        try await peer.wait(for: "unmapped", from: domU)
                        try shared.unshare()
                    }
                },
                .pv: mapSharedPages(seed: 1),
                .pvh: mapSharedPages(seed: 2),
            ]
        ),

        ConformanceCase(
            "share-map-1080p",
            "a 1080p XRGB8888 frame (2025 pages) shared by Dom0 and mapped by the PVH DomU in one call each",
            parts: [
                .dom0: { peer in
                    let shared = try GrantAllocator(on: peer.system).share(pages: 2025, with: peer.id(of: .pvh))
                    shared.withUnsafeMutableBytes { $0[2024 * 4096 + 4095] = 0x3C }
                    try await peer.publish(refs: shared.refs, as: "refs")
                    try await peer.wait(for: "done", from: .pvh)
                    try check(shared.withUnsafeBytes { $0[7] } == 0xC3, "the DomU's write is not visible")
                    try shared.unshare()
                },
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    try check(refs.count == 2025, "\(refs.count) refs")
                    let mapping = try GrantDevice(on: peer.system).map(refs, from: peer.id(of: .dom0))
                    try check(mapping.withUnsafeBytes { $0[2024 * 4096 + 4095] } == 0x3C, "last byte")
                    try mapping.withUnsafeMutableBytes { $0[7] = 0xC3 }
                    try mapping.unmap()
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "map-read-only",
            "a read-only grant maps read-only; a writable map of it fails at mmap with EINVAL",
            parts: [
                .dom0: { peer in
                    let shared = try GrantAllocator(on: peer.system).share(pages: 1, with: peer.id(of: .pvh), access: .readOnly)
                    shared.withUnsafeMutableBytes { $0[0] = 0x5E }
                    try await peer.publish(refs: shared.refs, as: "refs")
                    try await peer.wait(for: "done", from: .pvh)
                },
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    let gntdev = try GrantDevice(on: peer.system)
                    try checkFails(code: .badGrants, errno: .invalidArgument, operation: .mapGrants, call: "mmap") {
                        _ = try gntdev.map(refs, from: peer.id(of: .dom0))
                    }
                    let mapping = try gntdev.map(refs, from: peer.id(of: .dom0), access: .readOnly)
                    try check(mapping.withUnsafeBytes { $0[0] } == 0x5E, "byte")
                    try mapping.unmap()
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "map-bad-refs",
            "an invalid ref or an unknown domain fails at mmap, not at the ioctl, with EINVAL",
            each: LabRole.permanent
        ) { peer in
            let other = peer.id(of: .dom0)  // Dom0 maps its own bad ref: self-maps work in PV
            let gntdev = try GrantDevice(on: peer.system)
            try checkFails(code: .badGrants, errno: .invalidArgument, operation: .mapGrants, call: "mmap") {
                _ = try gntdev.map([GrantRef(0xFFFFF)], from: other)
            }
            try checkFails(code: .badGrants, errno: .invalidArgument, operation: .mapGrants, call: "mmap") {
                _ = try gntdev.map([GrantRef(8)], from: DomainID(30000))
            }
            let raw = Raw(peer.system)
            let fd = try raw.open("/dev/xen/gntdev")
            defer { raw.close(fd) }
            let index = try succeeds(
                raw.mapGrantRef(fd, [(domid: UInt32(other.rawValue), ref: 0xFFFFF)]),
                "MAP_GRANT_REF of a bad ref"
            )
            try check(raw.mmap(fd, pages: 1, offset: index), fails: .invalidArgument, "mmap of a bad ref")
            try check(raw.unmapGrantRef(fd, index: index, count: 1) == nil, "UNMAP_GRANT_REF")
            try check(raw.unmapGrantRef(fd, index: index, count: 1) == .noSuchFileOrDirectory, "second UNMAP_GRANT_REF is ENOENT")
            try check(raw.mapGrantRef(fd, [], count: 0), fails: .invalidArgument, "MAP_GRANT_REF of 0 refs")
            let two = try succeeds(
                raw.mapGrantRef(fd, [(domid: 0, ref: 0xFFFFF), (domid: 0, ref: 0xFFFFE)]),
                "MAP_GRANT_REF of 2"
            )
            try check(raw.unmapGrantRef(fd, index: two, count: 1) == .noSuchFileOrDirectory, "UNMAP with the wrong count")
            try check(raw.unmapGrantRef(fd, index: two, count: 0) == nil, "UNMAP with count 0 matches the map at the index")
        },

        ConformanceCase(
            "map-mmap-twice",
            "a grant map is mmapped once only, must be MAP_SHARED to be writable, and the range must match",
            parts: [
                .dom0: sharePagesUntilDone(count: 2, with: .pvh),
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    let raw = Raw(peer.system)
                    let fd = try raw.open("/dev/xen/gntdev")
                    defer { raw.close(fd) }
                    let index = try succeeds(
                        raw.mapGrantRef(fd, refs.map { (domid: UInt32(peer.id(of: .dom0).rawValue), ref: $0.rawValue) }),
                        "MAP_GRANT_REF"
                    )
                    try check(
                        raw.mmap(fd, pages: 2, offset: index, shared: false),
                        fails: .invalidArgument,
                        "writable MAP_PRIVATE"
                    )
                    try check(raw.mmap(fd, pages: 1, offset: index), fails: .invalidArgument, "a range that is not the map's")
                    let address = try succeeds(raw.mmap(fd, pages: 2, offset: index), "first mmap")
                    try check(raw.mmap(fd, pages: 2, offset: index), fails: .invalidArgument, "second mmap")
                    // GET_OFFSET_FOR_VADDR: the map behind an address, EINVAL for any other address.
                    let gntdev = try GrantDevice(on: peer.system)
                    let mapping = try gntdev.map(refs, from: peer.id(of: .dom0), access: .readOnly)
                    let found = try gntdev.mappedRange(containing: mapping.baseAddress + 4097)
                    try check(found.offset == mapping.offset && found.pageCount == 2, "mapped range \(found)")
                    var local = 0
                    try checkFails(code: .notFound, errno: .invalidArgument) { _ = try gntdev.mappedRange(containing: &local) }
                    try mapping.unmap()
                    raw.munmap(address, pages: 2)
                    try check(raw.mmap(fd, pages: 2, offset: index), fails: .invalidArgument, "mmap after munmap")
                    try check(raw.unmapGrantRef(fd, index: index, count: 2) == nil, "UNMAP_GRANT_REF")
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "notify-clear-byte",
            "CLEAR_BYTE: the peer sees the byte cleared when a gntdev map, or a gntalloc share, goes away",
            parts: [
                .dom0: { peer in
                    let allocator = try GrantAllocator(on: peer.system)
                    let mapped = try allocator.share(pages: 2, with: peer.id(of: .pvh))
                    mapped.withUnsafeMutableBytes { $0[4096 + 100] = 0xFF }
                    try await peer.publish(refs: mapped.refs, as: "refs")
                    try await peer.wait(for: "unmapped", from: .pvh)
                    try check(mapped.withUnsafeBytes { $0[4096 + 100] } == 0, "the DomU's unmap did not clear the byte")
                    try mapped.unshare()

                    let shared = try allocator.share(pages: 1, with: peer.id(of: .pvh))
                    shared.withUnsafeMutableBytes { $0[33] = 0xEE }
                    try shared.setUnmapNotification(.clearByte(at: 33))
                    try await peer.publish(refs: shared.refs, as: "refs2")
                    try await peer.wait(for: "mapped2", from: .pvh)
                    try shared.unshare()
                    try await peer.publish("unshared")
                    try await peer.wait(for: "done", from: .pvh)
                },
                .pvh: { peer in
                    let gntdev = try GrantDevice(on: peer.system)
                    let mapping = try gntdev.map(try await peer.refs("refs", from: .dom0), from: peer.id(of: .dom0))
                    try check(mapping.withUnsafeBytes { $0[4096 + 100] } == 0xFF, "byte before")
                    try mapping.setUnmapNotification(.clearByte(at: 4096 + 100))
                    try mapping.unmap()
                    try await peer.publish("unmapped")

                    let second = try gntdev.map(
                        try await peer.refs("refs2", from: .dom0),
                        from: peer.id(of: .dom0),
                        access: .readOnly
                    )
                    try checkFails(code: .notifyNeedsWritableMapping, errno: .some(nil)) {
                        try second.setUnmapNotification(.clearByte(at: 0))
                    }
                    try check(second.withUnsafeBytes { $0[33] } == 0xEE, "byte before unshare")
                    try await peer.publish("mapped2")
                    try await peer.wait(for: "unshared", from: .dom0)
                    try check(second.withUnsafeBytes { $0[33] } == 0, "Dom0's unshare did not clear the byte")
                    try second.unmap()
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "notify-send-event",
            "SEND_EVENT: the peer receives an event when a gntdev map goes away; an unbound port is refused",
            parts: [
                .dom0: { peer in
                    let shared = try GrantAllocator(on: peer.system).share(pages: 1, with: peer.id(of: .pvh))
                    let port = try await peer.bindUnboundPort(remote: .pvh)
                    try await peer.publish("port", String(port))
                    try await peer.publish(refs: shared.refs, as: "refs")
                    try check(try await peer.waitForEvent(port: port, timeout: .seconds(20)), "no event from the DomU's unmap")
                    try await peer.publish("received")
                    try shared.unshare()
                },
                .pvh: { peer in
                    guard let remotePort = UInt32(try await peer.value(of: "port", from: .dom0)) else {
                        throw ConformanceFailure("bad port")
                    }
                    let local = try await peer.bindInterdomain(remote: .dom0, port: remotePort)
                    let mapping = try GrantDevice(on: peer.system).map(
                        try await peer.refs("refs", from: .dom0),
                        from: peer.id(of: .dom0)
                    )
                    try checkFails(code: .eventChannelNotBound, errno: .invalidArgument) {
                        try mapping.setUnmapNotification(.sendEvent(port: 4000))
                    }
                    try mapping.setUnmapNotification(.sendEvent(port: local))
                    try mapping.unmap()
                    try await peer.wait(for: "received", from: .dom0)
                },
            ]
        ),

        ConformanceCase(
            "grant-copy",
            "grant copy in and out of granted pages, with a per-segment status for bad or read-only refs",
            parts: [
                .dom0: { peer in
                    let allocator = try GrantAllocator(on: peer.system)
                    let writable = try allocator.share(pages: 1, with: peer.id(of: .pvh))
                    let readOnly = try allocator.share(pages: 1, with: peer.id(of: .pvh), access: .readOnly)
                    writable.withUnsafeMutableBytes { $0.copyBytes(from: Array("grant copy in".utf8)) }
                    try await peer.publish(refs: writable.refs + readOnly.refs, as: "refs")
                    try await peer.wait(for: "copied", from: .pvh)
                    try check(
                        writable.withUnsafeBytes { Array($0[2000..<2008]) } == Array("from pvh".utf8),
                        "the copy out did not land"
                    )
                    try check(readOnly.withUnsafeBytes { $0[0] } == 0, "a read-only grant was written")
                },
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    let dom0 = peer.id(of: .dom0)
                    var inbound = [UInt8](repeating: 0, count: 13)
                    var outbound = Array("from pvh".utf8)
                    var statuses: [GrantStatus] = []
                    try inbound.withUnsafeMutableBytes { into in
                        try outbound.withUnsafeMutableBytes { from in
                            var segments = [
                                GrantCopySegment(
                                    from: .grant(ForeignGrant(domain: dom0, ref: refs[0]), offset: 0),
                                    to: .local(into.baseAddress!),
                                    length: 13
                                ),
                                GrantCopySegment(
                                    from: .local(from.baseAddress!),
                                    to: .grant(ForeignGrant(domain: dom0, ref: refs[0]), offset: 2000),
                                    length: 8
                                ),
                                GrantCopySegment(
                                    from: .local(from.baseAddress!),
                                    to: .grant(ForeignGrant(domain: dom0, ref: refs[1]), offset: 0),
                                    length: 8
                                ),
                                GrantCopySegment(
                                    from: .grant(ForeignGrant(domain: dom0, ref: GrantRef(5)), offset: 0),
                                    to: .local(into.baseAddress!),
                                    length: 1
                                ),  // a reserved, unused entry
                                GrantCopySegment(
                                    from: .grant(ForeignGrant(domain: DomainID(30000), ref: refs[0]), offset: 0),
                                    to: .local(into.baseAddress!),
                                    length: 1
                                ),
                            ]
                            try GrantDevice(on: peer.system).copy(&segments)
                            statuses = segments.map(\.status)
                        }
                    }
                    try check(String(decoding: inbound, as: UTF8.self) == "grant copy in", "copied in: \(inbound)")
                    try check(statuses == [.okay, .okay, .generalError, .generalError, .badDomain], "statuses \(statuses)")
                    try await peer.publish("copied")
                },
            ]
        ),

        ConformanceCase(
            "gntalloc-limit",
            "gntalloc's global limit: ENOSPC, named with its module parameter; a count of 0 is accepted",
            each: [.dom0]
        ) { peer in
            let allocator = try GrantAllocator(on: peer.system)
            guard let limit = allocator.globalLimit else { throw ConformanceFailure("limit not readable") }
            try checkFails(code: .gntallocLimit, errno: .noSpace) {
                _ = try allocator.share(pages: limit + 1, with: peer.id(of: .pvh))
            }
            let raw = Raw(peer.system)
            let fd = try raw.open("/dev/xen/gntalloc")
            defer { raw.close(fd) }
            try check(
                raw.allocGref(fd, domid: peer.id(of: .pvh).rawValue, count: UInt32(limit + 1)),
                fails: .noSpace,
                "ALLOC_GREF over the limit"
            )
            let empty = try succeeds(raw.allocGref(fd, domid: peer.id(of: .pvh).rawValue, count: 0), "ALLOC_GREF of 0 pages")
            let share = try succeeds(raw.allocGref(fd, domid: peer.id(of: .pvh).rawValue, count: 2), "ALLOC_GREF")
            try check(share.index == empty.index, "a share of 0 pages takes no index")
            try check(
                raw.deallocGref(fd, index: share.index + 4096, count: 2) == .invalidArgument,
                "DEALLOC of a range that is not a share"
            )
            try check(raw.deallocGref(fd, index: share.index, count: 2) == nil, "DEALLOC")
        },

        ConformanceCase(
            "dmabuf-ioctl-on-gntalloc",
            "a dma-buf ioctl sent to the gntalloc device is ENOTTY",
            each: LabRole.permanent
        ) { peer in
            let raw = Raw(peer.system)
            let fd = try raw.open("/dev/xen/gntalloc")
            defer { raw.close(fd) }
            try check(raw.export(fd, domid: 0, refs: [8]), fails: .inappropriateIOCTLForDevice, "EXP_FROM_REFS on gntalloc")
            try check(
                raw.waitReleased(fd, exported: 3, milliseconds: 0) == .inappropriateIOCTLForDevice,
                "WAIT_RELEASED on gntalloc"
            )
            try check(raw.importRelease(fd, buffer: 3) == .inappropriateIOCTLForDevice, "IMP_RELEASE on gntalloc")
        },
    ]
}
