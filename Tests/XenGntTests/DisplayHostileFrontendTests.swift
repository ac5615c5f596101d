import Testing
import XenDisplayBackend
import XenGnt
import XenGntTesting

/// The display backend on the simulated Xen, serialized with the other simulator suites (it
/// creates domains, whose memory is host descriptors the descriptor-leak checks count).
extension Simulated {
    /// What a hostile or broken frontend can send, on the simulated Xen: each gets an error status,
    /// nothing is kept, and the backend goes on serving.
    @Suite struct HostileFrontendTests {
        typealias World = EndToEndTests.World

        @Test func badDirectoriesAndGrants() async throws {
            let world = try World()
            let (backend, frontend) = try world.connect(backendAllocates: false)
            // A cyclic chain: two directory pages that name each other, for a buffer of 2930 pages (3 directory pages).
            let cyclic = try world.domU.grantPages(2, to: world.dom0.id, access: .readOnly)
            let filler = [UInt8](repeating: 7, count: 4092)
            try world.domU.write(withUnsafeBytes(of: cyclic[1].rawValue.littleEndian, Array.init) + filler, toGrant: cyclic[0])
            try world.domU.write(withUnsafeBytes(of: cyclic[0].rawValue.littleEndian, Array.init) + filler, toGrant: cyclic[1])
            let status = try await frontend.send(
                0x10,
                [(8, 1, 8), (16, 1000, 4), (20, 500, 4), (24, 32, 4), (28, 12_000_000, 4), (36, UInt64(cyclic[0].rawValue), 4)]
            ).status
            #expect(status == -22)
            #expect(backend.lastRefusal?.reason.contains("cyclic") == true)
            // A directory ref never granted, and refs in it never granted.
            #expect(
                try await frontend.send(0x10, [(8, 2, 8), (16, 64, 4), (20, 48, 4), (24, 32, 4), (28, 12288, 4), (36, 4000, 4)])
                    .status == -14
            )
            let directory = try world.domU.grantPages(1, to: world.dom0.id, access: .readOnly)
            try world.domU.write([0, 0, 0, 0, 0x11, 0x22, 0, 0, 0x12, 0x22, 0, 0, 0x13, 0x22, 0, 0], toGrant: directory[0])
            #expect(
                try await frontend.send(
                    0x10,
                    [(8, 3, 8), (16, 64, 4), (20, 48, 4), (24, 32, 4), (28, 12288, 4), (36, UInt64(directory[0].rawValue), 4)]
                ).status == -14
            )
            // Sizes that overflow.
            #expect(
                try await frontend.send(
                    0x10,
                    [
                        (8, 4, 8), (16, 0xffff_ffff, 4), (20, 0xffff_ffff, 4), (24, 32, 4), (28, 4096, 4),
                        (36, UInt64(directory[0].rawValue), 4),
                    ]
                ).status == -22
            )
            #expect(
                try await frontend.send(
                    0x10,
                    [
                        (8, 5, 8), (16, 64, 4), (20, 48, 4), (24, 32, 4), (28, 12288, 4), (36, UInt64(directory[0].rawValue), 4),
                        (40, 0xffff_fff0, 4),
                    ]
                ).status == -22
            )
            #expect(backend.session.liveBuffers.isEmpty)
            world.domU.endAccess(cyclic + directory)
            // ... and the device still serves a well-formed buffer.
            #expect(try await frontend.createBuffer(9, width: 64, height: 48).status == 0)
            frontend.close()
            backend.session.tearDown(resources: &backend.resources)
            #expect(EndToEndTests.holdsNothing(world), "\(world.xen.census())")
        }

        @Test func unknownCookiesOperationsAndOrder() async throws {
            let world = try World()
            let (backend, frontend) = try world.connect(backendAllocates: false)
            #expect(try await frontend.pageFlip(connector: 0, framebuffer: 99).status == -2)
            #expect(try await frontend.attachFramebuffer(11, to: 99, width: 64, height: 48).status == -2)
            #expect(try await frontend.detachFramebuffer(99).status == -2)
            #expect(try await frontend.send(0x11, [(8, 99, 8)]).status == -2)
            #expect(try await frontend.send(0x7f, []).status == -95)
            #expect(try await frontend.setConfiguration(connector: 3, framebuffer: 11, width: 64, height: 48).status == -22)
            #expect(try await frontend.createBuffer(1, width: 64, height: 48).status == 0)
            #expect(try await frontend.createBuffer(1, width: 64, height: 48).status == -17)
            #expect(try await frontend.attachFramebuffer(11, to: 1, width: 64, height: 48).status == 0)
            #expect(try await frontend.pageFlip(connector: 0, framebuffer: 11).status == -22)  // before SET_CONFIG
            #expect(try await frontend.send(0x11, [(8, 1, 8)]).status == -16)  // framebuffer attached
            // be-alloc=0, yet the frontend asks the backend to allocate.
            #expect(
                try await frontend.send(
                    0x10,
                    [(8, 2, 8), (16, 64, 4), (20, 48, 4), (24, 32, 4), (28, 12288, 4), (32, 1, 4), (36, 8, 4)]
                ).status == -22
            )
            #expect(try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
            #expect(try await frontend.pageFlip(connector: 0, framebuffer: 11).status == 0)
            #expect(frontend.flipsCompleted[0] == [11])
            frontend.close()
            backend.session.tearDown(resources: &backend.resources)
            #expect(EndToEndTests.holdsNothing(world), "\(world.xen.census())")
        }

        @Test func aFrontendDestroyedMidFlipLeavesTheBackendClean() async throws {
            let world = try World()
            let (backend, frontend) = try world.connect(backendAllocates: false)
            #expect(try await frontend.createBuffer(1, width: 64, height: 48).status == 0)
            #expect(try await frontend.attachFramebuffer(11, to: 1, width: 64, height: 48).status == 0)
            #expect(try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
            world.xen.destroyDomain(world.domU.id)
            // The backend still holds its mapping of the dead domain's pages; a flip still reads
            // them (Xen keeps mapped pages alive), and teardown releases everything.
            _ = backend.deliver(DisplayRequest(id: 0, .pageFlip(framebufferCookie: 11)).encoded, 0)
            backend.session.tearDown(resources: &backend.resources)
            #expect(EndToEndTests.holdsNothing(world, only: world.dom0.id), "\(world.xen.census())")
        }
    }
}
