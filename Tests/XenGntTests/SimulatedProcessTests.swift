import CXenGnt
import SystemPackage
import Testing
import XenGnt
import XenGntConformance
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

extension Simulated {
    @Suite struct Processes {
        @Test(.noDescriptorLeaks) func killReleasesEverythingTheProcessHeld() throws {
            do {
                let host = try Host()
                let worker = try host.backend.spawnProcess()
                #expect(worker.isAlive && worker.domain == host.backend.id && worker.pid == 2)
                let refs = try host.frontend.grantPages(4, to: host.backend.id)
                let port = host.backend.bindEventChannel()
                let gntdev = try GrantDevice(on: worker.system)
                let mapping = try gntdev.map(refs[0..<2], from: host.frontend.id)
                try mapping.setUnmapNotification(.sendEvent(port: port))
                let exported = try gntdev.exportDmaBuf(refs: refs[2...], from: host.frontend.id)
                let shared = try GrantAllocator(on: worker.system).share(pages: 2, with: host.frontend.id)
                let buffer = try DmaBuf.udmabuf(pages: 1, on: worker.system)
                let cpu = try buffer.map()
                let imported = try gntdev.importDmaBuf(buffer, to: host.frontend.id)
                let events = try worker.system.calls.eventfd(initialValue: 0, flags: 0)
                let held = host.xen.census()[host.backend.id]!
                #expect(held.processes == 2 && held.grantMaps == 1 && held.exports == 1 && held.imports == 1)
                #expect(held.gntallocPages == 2 && held.memoryMappings == 3 && held.foreignMappings == 4)
                #expect(host.frontend.mapCount(of: refs[0]) == 1)

                worker.kill()

                #expect(!worker.isAlive)
                let left = host.xen.census()[host.backend.id]!
                #expect(left.processes == 1 && left.descriptors == 0 && left.openFiles == 0 && left.memoryMappings == 0)
                #expect(left.grantMaps == 0 && left.exports == 0 && left.imports == 0 && left.gntallocPages == 0)
                #expect(left.foreignMappings == 0 && left.grants == 0)
                #expect(host.frontend.mapCount(of: refs[0]) == 0 && host.frontend.mapCount(of: refs[3]) == 0)
                #expect(host.backend.notificationCount(port: port) == 1, "the unmap notification fired at exit")
                #expect(host.xen.grants(from: host.backend.id, to: host.frontend.id) == 0)
                host.frontend.endAccess(refs)
                #expect(host.xen.census().isClean, "\(host.xen.census())")
                #expect(throws: Errno.noSuchProcess) {
                    _ = try worker.system.calls.open("/dev/xen/gntdev", flags: O_RDWR, mode: 0)
                }
                _ = (cpu.byteCount, imported.refs, shared.refs, exported.pageCount, events)
            }  // the dead process's owners deinit: every call fails without touching the host
        }

        @Test func aDeadProcessNeverTouchesTheHost() throws {
            let host = try Host()
            let worker = try host.backend.spawnProcess()
            let number: Int32
            let address: UnsafeMutableRawPointer
            do {
                let buffer = try DmaBuf.udmabuf(pages: 1, on: worker.system)
                number = buffer.fileDescriptor.rawValue
                let device = try GrantDevice(on: worker.system)
                let mapping = try device.map(host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
                address = mapping.baseAddress
                worker.kill()
                #expect(!isOpen(number), "kill closed the host descriptor")

                // The host gives the number to someone else, and maps something where the
                // mapping was; the dead process's owners must touch neither when they go.
                let null = open("/dev/null", O_RDWR | O_CLOEXEC)
                #expect(dup2(null, number) == number)
                close(null)
                let reused = mmap(address, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                try #require(reused == address, "the host hands out the freed address again")
                address.storeBytes(of: 7, as: UInt8.self)
                _ = (buffer.fileDescriptor, mapping.pageCount, device.guestType)
            }
            #expect(isOpen(number), "the owner's close failed with ESRCH instead of closing someone else's descriptor")
            #expect(address.load(as: UInt8.self) == 7, "the owner's munmap did not touch the memory now there")
            #expect(throws: Errno.noSuchProcess) { try worker.system.calls.close(number) }
            #expect(throws: Errno.noSuchProcess) { try worker.system.calls.munmap(address, length: 4096) }
            #expect(isOpen(number))
            munmap(address, 4096)
            close(number)
        }

        @Test func aProcessOnlySeesItsOwnDescriptors() throws {
            let host = try Host()
            let worker = try host.backend.spawnProcess()
            let main = Raw(host.backend.system)
            let other = Raw(worker.system)
            let fd = try main.open("/dev/xen/gntdev")
            defer { main.close(fd) }
            #expect(other.unmapGrantRef(fd, index: 0, count: 1) == .badFileDescriptor)
            #expect(throws: Errno.badFileDescriptor) { try other.calls.close(fd) }
            #expect(throws: Errno.badFileDescriptor) { _ = try other.calls.dup(fd) }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            #expect(
                try withUnsafeMutablePointer(to: &entry) {
                    try other.calls.poll(UnsafeMutableBufferPointer(start: $0, count: 1), timeout: 0)
                } == 1
            )
            #expect(entry.revents == Int16(POLLNVAL))
            #expect(main.unmapGrantRef(fd, index: 0, count: 1) == .noSuchFileOrDirectory, "still the main process's")
        }
    }

    @Suite struct DestroyedDomains {
        @Test func aDestroyedDomainCanNeitherOpenNorMapNorExport() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let frontendSystem = host.frontend.system
            host.xen.destroyDomain(host.frontend.id)
            #expect(host.xen.state(of: host.frontend.id) == .gone, "nothing of it was mapped")
            #expect(host.frontend.state == .gone)
            #expect(host.xen.existingDomain(host.frontend.id) == nil)
            #expect(#expect(throws: XenGntError.self) { _ = try GrantDevice(on: frontendSystem) }?.errno == .noSuchProcess)
            #expect(throws: Errno.noSuchProcess) {
                _ = try host.xen.system(of: host.frontend.id).calls.readSmallFile(Paths.hypervisorType)
            }
            #expect(throws: SimulationError.self) { _ = try host.frontend.spawnProcess() }
            #expect(throws: SimulationError.self) { _ = try host.frontend.grantPages(1, to: host.backend.id) }
            let gntdev = try host.gntdev()
            #expect(#expect(throws: XenGntError.self) { _ = try gntdev.map(refs, from: host.frontend.id) }?.code == .badGrants)
            #expect(
                #expect(throws: XenGntError.self) { _ = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id) }?.errno
                    == .invalidArgument
            )
            var byte: UInt8 = 0
            try withUnsafeMutableBytes(of: &byte) { local in
                var segments = [
                    GrantCopySegment(
                        from: .grant(ForeignGrant(domain: host.frontend.id, ref: refs[0]), offset: 0),
                        to: .local(local.baseAddress!),
                        length: 1
                    )
                ]
                try gntdev.copy(&segments)
                #expect(segments[0].status == .badDomain)
            }
            #expect(host.xen.census()[host.frontend.id] == nil, "a gone domain leaves nothing")
            let again = try host.xen.addDomain(host.frontend.id, type: .pv)
            #expect(again.state == .running && host.frontend.state == .gone, "a new domain may take a gone one's id")
        }

        @Test func aDestroyedDomainIsDyingUntilOthersUnmapItsPages() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            try host.frontend.write([9], toGrant: refs[1])
            let mapping = try host.gntdev().map(refs, from: host.frontend.id)
            #expect(host.xen.mappings(by: host.backend.id, of: host.frontend.id) == 2)
            host.xen.destroyDomain(host.frontend.id)
            #expect(host.xen.state(of: host.frontend.id) == .dying)
            #expect(host.xen.grants(from: host.frontend.id, to: host.backend.id) == 2)
            let census = host.xen.census()
            #expect(census[host.frontend.id]?.state == .dying && !census.isClean)
            #expect(census.description.contains("dom1 (dying): dying, 2 grants (2 to dom2)"), "\(census)")
            #expect(mapping.withUnsafeBytes { $0[4096] } == 9, "its pages stay mapped")
            #expect(throws: SimulationError.self) { _ = try host.xen.addDomain(host.frontend.id, type: .pvh) }
            try mapping.unmap()
            #expect(host.xen.state(of: host.frontend.id) == .gone)
            #expect(host.xen.grants(from: host.frontend.id, to: host.backend.id) == 0)
            #expect(host.xen.mappings(by: host.backend.id, of: host.frontend.id) == 0)
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test(.noDescriptorLeaks) func xenTearsDownTheMappingsADestroyedDomainHeld() throws {
            do {
                let host = try Host()
                let shared = try GrantAllocator(on: host.backend.system).share(pages: 3, with: host.frontend.id)
                let worker = try host.frontend.spawnProcess()
                let gntdev = try GrantDevice(on: worker.system)
                let mapping = try gntdev.map(shared.refs, from: host.backend.id)
                #expect(host.xen.mappings(by: host.frontend.id, of: host.backend.id) == 3)
                try shared.unshare()
                #expect(host.xen.grants(from: host.backend.id, to: host.frontend.id) == 3, "deferred while mapped")
                host.xen.destroyDomain(host.frontend.id)
                #expect(!worker.isAlive)
                #expect(host.xen.mappings(by: host.frontend.id, of: host.backend.id) == 0)
                #expect(host.xen.grants(from: host.backend.id, to: host.frontend.id) == 0, "the deferred ends completed")
                #expect(host.xen.census().isClean, "\(host.xen.census())")
                _ = mapping.pageCount
            }
        }
    }

    @Suite struct Teardown {
        /// Whatever a test leaves behind, the simulation's own descriptors (domains' memory) go
        /// with it; the descriptors it handed out are whoever took them.
        @Test func aSimulationLeftDirtyStillClosesItsOwnMemory() throws {
            func simulatorMemory() -> [Int32] {
                openDescriptors().filter { (try? String(contentsOfLink: $0))?.contains("xengnt-sim-dom") == true }
            }
            let before = simulatorMemory()
            var handedOut: [Int32] = []
            var mapped: [UnsafeMutableRawPointer] = []
            do {
                let host = try Host()
                // dom1 and dom2 map each other's pages, and nobody cleans up.
                for (mapper, owner) in [(host.frontend, host.backend), (host.backend, host.frontend)] {
                    let refs = try owner.grantPages(1, to: mapper.id)
                    let raw = Raw(mapper.system)
                    let fd = try raw.open(Paths.gntdev)
                    let index = try raw.mapGrantRef(fd, [(domid: UInt32(owner.id.rawValue), ref: refs[0].rawValue)]).get()
                    mapped.append(try raw.mmap(fd, pages: 1, offset: index).get())
                    handedOut.append(fd)
                }
                #expect(host.xen.mappings(by: host.frontend.id, of: host.backend.id) == 1)
                #expect(simulatorMemory().count == before.count + 3)
            }
            #expect(simulatorMemory() == before)
            for address in mapped { munmap(address, 4096) }
            for fd in handedOut { close(fd) }
        }
    }

    @Suite struct CensusReports {
        @Test func theCensusSaysWhatIsLeftPerDomain() throws {
            let host = try Host()
            #expect(host.xen.census().isClean)
            #expect(host.xen.census().description == "clean (3 domains)")
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let gntdev = try host.gntdev()
            let mapping = try gntdev.map(refs[0..<1], from: host.frontend.id)
            let census = host.xen.census()
            #expect(!census.isClean)
            #expect(census.processes == 3 && census.descriptors == 1 && census.grants == 2 && census.foreignMappings == 1)
            let backend = try #require(census[host.backend.id])
            #expect(
                backend.description == "dom2: 1 descriptor, 1 open file, 1 memory mapping, 1 gntdev grant map, 1 foreign mapping"
            )
            #expect(census[host.frontend.id]?.grantsIssued == [host.backend.id: 2])
            #expect(census.description == "dom1: 2 grants (2 to dom2); " + backend.description)
            #expect(census[host.dom0.id]?.isClean == true)
            try mapping.unmap()
            host.frontend.endAccess(refs)
            _ = host.backend.bindEventChannel()
            #expect(host.xen.census().eventChannelPorts == 1)
            #expect(!host.xen.census().isClean, "the gntdev device is still open")
            _ = gntdev
        }
    }
}
