import SystemPackage
import Testing
import XenGnt
import XenGntTesting

/// Wherever a count, size, offset or duration enters, a hostile value is refused with a typed
/// error before any allocation or system call — never a trap.
extension Simulated {
    @Suite(.noDescriptorLeaks) struct HostileValues {
        /// A recorded backend whose every call is counted.
        struct Recorded {
            let host: Host
            let recorder: SeamRecorder
            init() throws {
                host = try Host()
                recorder = SeamRecorder(host.backend.system)
            }
            /// The error `body` throws, checking that it made no system call.
            func refusal(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> XenGntError? {
                let before = recorder.count
                let error = #expect(throws: XenGntError.self, sourceLocation: sourceLocation) { try body() }
                #expect(
                    recorder.calls[before...].isEmpty,
                    "system calls made: \(Array(recorder.calls[before...]))",
                    sourceLocation: sourceLocation
                )
                #expect(error?.errno == nil && error?.call == nil, sourceLocation: sourceLocation)
                return error
            }
        }

        @Test(arguments: [Int.min, -1, 0, (1 << 24) + 1, Int.max])
        func pageCounts(_ pages: Int) throws {
            let r = try Recorded()
            let system = r.recorder.system
            let gntdev = try GrantDevice(on: system)
            let allocator = try GrantAllocator(on: system)
            for error in [
                r.refusal { _ = try DmaBuf.udmabuf(pages: pages, on: system) },
                r.refusal { _ = try DmaBuf.allocate(pages: pages, on: system) },
                r.refusal { _ = try allocator.share(pages: pages, with: r.host.frontend.id) },
                r.refusal {
                    _ = try gntdev.importDmaBuf(
                        fileDescriptor: FileDescriptor(rawValue: 0),
                        to: r.host.frontend.id,
                        pageCount: pages
                    )
                },
                r.refusal { _ = try gntdev.map(MisstatedRefs(refs: [8], claimed: pages), from: r.host.frontend.id) },
                r.refusal {
                    _ = try gntdev.exportDmaBuf(refs: MisstatedRefs(refs: [8], claimed: pages), from: r.host.frontend.id)
                },
            ] {
                #expect(
                    error.map { [.emptyRequest, .tooManyPages, .invalidArgument].contains($0.code) } == true,
                    "\(String(describing: error))"
                )
            }
        }

        @Test(arguments: [Int.min, -1, 4096, 4097, Int.max])
        func grantCopyOffsetsAndLengths(_ value: Int) throws {
            let r = try Recorded()
            let gntdev = try GrantDevice(on: r.recorder.system)
            var byte: UInt8 = 0
            withUnsafeMutableBytes(of: &byte) { local in
                let grant = ForeignGrant(domain: r.host.frontend.id, ref: 8)
                for segment in [
                    GrantCopySegment(from: .grant(grant, offset: value), to: .local(local.baseAddress!), length: 1),
                    GrantCopySegment(from: .local(local.baseAddress!), to: .grant(grant, offset: value), length: 1),
                    GrantCopySegment(
                        from: .grant(grant, offset: 0),
                        to: .local(local.baseAddress!),
                        length: value == 4096 ? -1 : value
                    ),
                ] {
                    var segments = [segment]
                    let error = r.refusal { try gntdev.copy(&segments) }
                    #expect(error?.operation == .grantCopy)
                }
            }
        }

        @Test(arguments: [Int.min, -1, 4096, Int.max])
        func notificationOffsets(_ offset: Int) throws {
            let r = try Recorded()
            let refs = try r.host.frontend.grantPages(1, to: r.host.backend.id)
            let mapping = try GrantDevice(on: r.recorder.system).map(refs, from: r.host.frontend.id)
            let error = r.refusal { try mapping.setUnmapNotification(.clearByte(at: offset)) }
            #expect(error?.code == .outOfRange && error?.offset == offset)
        }

        @Test func durations() async throws {
            let r = try Recorded()
            let refs = try r.host.frontend.grantPages(1, to: r.host.backend.id)
            let gntdev = try GrantDevice(on: r.recorder.system)
            let exported = try gntdev.exportDmaBuf(refs: refs, from: r.host.frontend.id)
            let holder = try exported.duplicate().take()
            let calls: any SystemCalls = r.recorder
            let pending = try exported.release()
            for negative in [Duration.seconds(-1), .nanoseconds(-1), .seconds(Int64.min)] {
                #expect(r.refusal { _ = try pending.wait(timeout: negative) }?.code == .invalidArgument)
                await #expect(throws: XenGntError.self) { _ = try await pending.waitUntilReleased(timeout: negative) }
                await #expect(throws: XenGntError.self) {
                    _ = try await pending.waitUntilReleased(timeout: .zero, pollInterval: negative)
                }
            }
            // "Wait forever" is a plausible timeout: it waits until the buffer is released.
            let release = Task.detached {
                try await Task.sleep(for: .milliseconds(50))
                try calls.close(holder.rawValue)
            }
            #expect(try pending.wait(timeout: .seconds(Int64.max)))
            #expect(try pending.wait(timeout: .seconds(Int64.max)), "and asks no more once released")
            try await release.value

        }

        @Test func namesAndHeaps() throws {
            let r = try Recorded()
            let system = r.recorder.system
            for heap in ["", ".", "..", "../../etc/passwd", "a/b"] {
                #expect(r.refusal { _ = try DmaBuf.allocate(fromHeap: heap, pages: 1, on: system) }?.code == .invalidArgument)
            }
            let buffer = try DmaBuf.udmabuf(pages: 1, on: r.host.backend.system)
            let adopted = DmaBuf(adopting: buffer.take(), on: system)
            for name in [String(repeating: "x", count: 32), String(repeating: "é", count: 16), "a\u{0}b"] {
                #expect(r.refusal { try adopted.setName(name) }?.code == .invalidArgument)
            }
            try adopted.setName(String(repeating: "x", count: 31))
        }
    }

    /// Mapping or exporting this domain's own grants corrupts an x86 PVH/HVM domain (the lab saw
    /// the map show the wrong page and the next gntalloc mmap oops the kernel), so XenGnt refuses
    /// it wherever it knows its own domain id; PV and Arm domains map their own grants fine.
    @Suite struct OwnGrants {
        @Test(arguments: [GuestType.pvh, .hvm])
        func areRefusedInAnX86AutoTranslatedDomainThatKnowsItsId(_ type: GuestType) throws {
            let xen = XenSimulation()
            let me = try xen.addDomain(4, type: type)
            let refs = try me.grantPages(1, to: me.id)
            let gntdev = try GrantDevice(on: me.system)
            #expect(me.system.domainID == me.id)
            for error in [
                #expect(throws: XenGntError.self) { _ = try gntdev.map(refs, from: me.id) },
                #expect(throws: XenGntError.self) { _ = try gntdev.map([ForeignGrant(domain: me.id, ref: refs[0])]) },
                #expect(throws: XenGntError.self) { _ = try gntdev.exportDmaBuf(refs: refs, from: me.id) },
            ] {
                #expect(error?.code == .ownGrants && error?.domain == me.id && error?.guestType == type)
                #expect(error?.errno == nil)
            }
            #expect(me.mapCount(of: refs[0]) == 0)
        }

        @Test(arguments: [GuestType.pv, .arm])
        func areMappedInPVAndArmDomains(_ type: GuestType) throws {
            let xen = XenSimulation()
            let me = try xen.addDomain(4, type: type)
            let refs = try me.grantPages(1, to: me.id)
            try me.write([0x42], toGrant: refs[0])
            let mapping = try GrantDevice(on: me.system).map(refs, from: me.id)
            #expect(mapping.withUnsafeBytes { $0[0] } == 0x42)
        }

        @Test func areNotRefusedWhenTheDomainIdIsUnknown() throws {
            let host = try Host()
            let anonymous = XenSystem.kernel.domainID
            #expect(anonymous == nil, "the kernel seam learns its id from XenStore")
            #expect(host.backend.system.identifying(as: 9).domainID == 9)
        }
    }
}
