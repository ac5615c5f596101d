import CXenGnt
import Dispatch
import SystemPackage
import Testing
import XenGnt
import XenGntConformance
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

/// What a background poll saw.
final class PollOutcome: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var result: Result<Int16, Errno>?
}

/// Polls `fd` for input on a thread of its own (the poll blocks that thread).
func pollInBackground(_ calls: any SystemCalls, _ fd: Int32, timeout: Int32 = 20_000) -> PollOutcome {
    let outcome = PollOutcome()
    DispatchQueue.global().async {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        do {
            _ = try withUnsafeMutablePointer(to: &entry) {
                try calls.poll(UnsafeMutableBufferPointer(start: $0, count: 1), timeout: timeout)
            }
            outcome.result = .success(entry.revents)
        } catch let error as Errno {
            outcome.result = .failure(error)
        } catch {
            outcome.result = .failure(.ioError)
        }
        outcome.done.signal()
    }
    return outcome
}

extension Simulated {
    /// The seam calls beyond ioctl and mmap: read, write, poll, eventfd, fstat, directory
    /// listings, sockets.
    @Suite struct SeamCalls {
        @Test func anEventfdIsADescriptorOfTheProcessAndPassesThrough() throws {
            let host = try Host()
            let calls = host.backend.system.calls
            let fd = try calls.eventfd(initialValue: 2, flags: 0)
            #expect(host.xen.census()[host.backend.id]?.descriptors == 1)
            var value: UInt64 = 3
            #expect(try withUnsafeBytes(of: &value) { try calls.write(fd, from: $0) } == 8)
            #expect(try withUnsafeMutableBytes(of: &value) { try calls.read(fd, into: $0) } == 8)
            #expect(value == 5)
            #expect(try calls.fstat(fd).st_nlink == 1)
            try calls.close(fd)
            #expect(host.xen.census().isClean)
        }

        @Test func aBlockedPollIsWokenByAWriteThroughTheSeamAndBlocksNothingElse() async throws {
            let host = try Host()
            let calls = host.backend.system.calls
            let fd = try calls.eventfd(initialValue: 0, flags: 0)
            defer { try? calls.close(fd) }
            let outcome = pollInBackground(calls, fd)
            #expect(outcome.done.wait(timeout: .now() + .milliseconds(50)) == .timedOut, "nothing to read yet")
            // While it waits, every other simulated call goes on.
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            let mapping = try host.gntdev().map(refs, from: host.frontend.id)
            try mapping.unmap()
            _ = host.xen.census()
            #expect(outcome.done.wait(timeout: .now()) == .timedOut, "still blocked")
            let writer = Task.detached {
                var one: UInt64 = 1
                return try withUnsafeBytes(of: &one) { try calls.write(fd, from: $0) }
            }
            #expect(outcome.done.wait(timeout: .now() + .seconds(10)) == .success)
            #expect(try outcome.result?.get() == Int16(POLLIN))
            #expect(try await writer.value == 8)
        }

        @Test func killingAProcessEndsItsBlockedPollWithESRCH() throws {
            let host = try Host()
            let worker = try host.backend.spawnProcess()
            let fd = try worker.system.calls.eventfd(initialValue: 0, flags: 0)
            let outcome = pollInBackground(worker.system.calls, fd)
            #expect(outcome.done.wait(timeout: .now() + .milliseconds(30)) == .timedOut)
            worker.kill()
            #expect(outcome.done.wait(timeout: .now() + .seconds(10)) == .success)
            #expect(throws: Errno.noSuchProcess) { try outcome.result?.get() }
        }

        @Test func pollAnswersDevicesWithoutAPollOperationAtOnce() throws {
            let host = try Host()
            let calls = host.backend.system.calls
            let gntdev = try calls.open(Paths.gntdev, flags: O_RDWR | O_CLOEXEC, mode: 0)
            let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
            defer { try? calls.close(gntdev) }
            var entries = [
                pollfd(fd: gntdev, events: Int16(POLLIN | POLLOUT), revents: 0),
                pollfd(fd: buffer.fileDescriptor.rawValue, events: Int16(POLLIN), revents: 0),
                pollfd(fd: -1, events: Int16(POLLIN), revents: 7),
            ]
            #expect(try entries.withUnsafeMutableBufferPointer { try calls.poll($0, timeout: -1) } == 2)
            #expect(entries[0].revents == Int16(POLLIN | POLLOUT), "DEFAULT_POLLMASK, as asked")
            #expect(entries[1].revents & Int16(POLLIN) != 0, "a dma-buf without fences")
            #expect(entries[2].revents == 0)
        }

        @Test func fstatSynthesizesDeviceNodesAndDmaBufs() throws {
            let host = try Host()
            let calls = host.backend.system.calls
            let gntdev = try calls.open(Paths.gntdev, flags: O_RDWR | O_CLOEXEC, mode: 0)
            defer { try? calls.close(gntdev) }
            let device = try calls.fstat(gntdev)
            #expect(device.st_mode & S_IFMT == S_IFCHR)
            #expect((device.st_rdev >> 8) & 0xFFF == 10, "a misc device")
            let buffer = try DmaBuf.udmabuf(pages: 2, on: host.backend.system)
            let info = try calls.fstat(buffer.fileDescriptor.rawValue)
            #expect(info.st_size == 8192 && info.st_mode & S_IFMT == 0 && info.st_mode & 0o777 == 0o600)
            let memfd = try calls.memfdCreate("xengnt-test", flags: 1)
            defer { try? calls.close(memfd) }
            try calls.ftruncate(memfd, length: 4096)
            #expect(try calls.fstat(memfd).st_size == 4096, "a memfd is the host's")
            let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
            defer { close(null) }
            #expect(try calls.fstat(null).st_rdev == 0x103, "a host descriptor handed over is the host's")
        }

        @Test func directoriesListTheDomainsDeviceNodes() throws {
            let host = try Host { $0.devices = [.gntdev, .udmabuf] }
            let calls = host.backend.system.calls
            #expect(try calls.listDirectory("/dev/xen") == ["gntdev"])
            #expect(try calls.listDirectory("/dev/").sorted() == ["null", "udmabuf", "xen"])
            #expect(throws: Errno.noSuchFileOrDirectory) { _ = try calls.listDirectory("/dev/dma_heap") }
            host.backend.kernel.devices = Set(SimulatedKernel.Device.allCases)
            #expect(try calls.listDirectory("/dev/xen").sorted() == ["evtchn", "gntalloc", "gntdev", "xenbus"])
            #expect(try calls.listDirectory("/dev/dma_heap") == ["system"])
            #expect(try calls.listDirectory("/sys/module/udmabuf/parameters").sorted() == ["list_limit", "size_limit_mb"])
            #expect(throws: Errno.notDirectory) { _ = try calls.listDirectory("/dev/xen/gntdev") }
            #expect(throws: Errno.noSuchFileOrDirectory) { _ = try calls.listDirectory("/nonexistent") }
            #expect(throws: Errno.noSuchFileOrDirectory) { _ = try calls.connectUnixSocket("/var/run/xenstored/socket") }
            #expect(throws: Errno.connectionRefused) { _ = try calls.connectUnixSocket("/dev/xen/gntdev") }
            #expect(throws: Errno.isDirectory) { _ = try calls.open("/dev/xen", flags: O_RDWR, mode: 0) }
        }

        @Test func theSimulatorsOwnDescriptorsDoNotExistForAProcess() throws {
            let host = try Host()
            _ = try host.backend.grantPages(1, to: host.frontend.id)
            let memory = try #require(
                openDescriptors().first { (try? String(contentsOfLink: $0))?.contains("xengnt-sim-dom2") == true }
            )
            let calls = host.frontend.system.calls
            #expect(throws: Errno.badFileDescriptor) { try calls.close(memory) }
            #expect(throws: Errno.badFileDescriptor) {
                _ = try calls.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: memory, offset: 0)
            }
            #expect(throws: Errno.badFileDescriptor) { try calls.dup3(memory, memory, flags: 0) }
            #expect(isOpen(memory))
        }

        @Test func aDeviceWithoutReadWriteOrSeekSaysSo() throws {
            let host = try Host()
            let calls = host.backend.system.calls
            let fd = try calls.open(Paths.gntalloc, flags: O_RDWR | O_CLOEXEC, mode: 0)
            defer { try? calls.close(fd) }
            var bytes = [UInt8](repeating: 0, count: 8)
            #expect(throws: Errno.invalidArgument) { _ = try bytes.withUnsafeMutableBytes { try calls.read(fd, into: $0) } }
            #expect(throws: Errno.invalidArgument) { _ = try bytes.withUnsafeBytes { try calls.write(fd, from: $0) } }
            #expect(throws: Errno.illegalSeek) { _ = try calls.lseek(fd, offset: 0, whence: SEEK_SET) }
            #expect(throws: Errno.invalidArgument) { try calls.ftruncate(fd, length: 0) }
            #expect(throws: Errno.invalidArgument) { _ = try calls.fcntl(fd, command: Int32(CXG_F_GET_SEALS), argument: 0) }
            #expect(try calls.fcntl(fd, command: F_GETFD, argument: 0) & FD_CLOEXEC != 0)
            let copy = try calls.fcntl(fd, command: F_DUPFD_CLOEXEC, argument: 100)
            #expect(copy >= 100 && host.xen.census()[host.backend.id]?.descriptors == 2)
            try calls.close(copy)
        }
    }

    @Suite struct FaultKinds {
        @Test func everyKindOfCallCanBeFaulted() throws {
            let host = try Host()
            let calls = host.backend.system.calls
            let gntdev = try calls.open(Paths.gntdev, flags: O_RDWR | O_CLOEXEC, mode: 0)
            let memfd = try calls.memfdCreate("xengnt-test", flags: 1)
            let event = try calls.eventfd(initialValue: 1, flags: 0)
            defer { for fd in [gntdev, memfd, event] { try? calls.close(fd) } }
            try calls.ftruncate(memfd, length: 4096)
            var word: UInt64 = 1
            var entry = pollfd(fd: event, events: Int16(POLLIN), revents: 0)
            let cases: [(SimulatedCall, () throws -> Void)] = [
                (.open, { _ = try calls.open(Paths.gntdev, flags: O_RDWR, mode: 0) }),
                (.close, { try calls.close(event) }),
                (.dup, { _ = try calls.dup(event) }),
                (.dup, { try calls.dup3(memfd, event, flags: O_CLOEXEC) }),
                (.mmap, { _ = try calls.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: memfd, offset: 0) }),
                (.munmap, { try calls.munmap(UnsafeMutableRawPointer(bitPattern: 0x10000)!, length: 4096) }),
                (.lseek, { _ = try calls.lseek(memfd, offset: 0, whence: SEEK_END) }),
                (.ioctl(nil), { _ = try calls.ioctl(gntdev, 0x1234, nil) }),
                (.read, { _ = try withUnsafeMutableBytes(of: &word) { try calls.read(event, into: $0) } }),
                (.write, { _ = try withUnsafeBytes(of: &word) { try calls.write(event, from: $0) } }),
                (
                    .poll,
                    {
                        _ = try withUnsafeMutablePointer(to: &entry) {
                            try calls.poll(UnsafeMutableBufferPointer(start: $0, count: 1), timeout: 0)
                        }
                    }
                ),
                (.connect, { _ = try calls.connectUnixSocket("/var/run/xenstored/socket") }),
                (.listDirectory, { _ = try calls.listDirectory("/dev/xen") }),
                (.eventfd, { _ = try calls.eventfd(initialValue: 0, flags: 0) }),
                (.memfd, { _ = try calls.memfdCreate("xengnt-test", flags: 1) }),
                (.ftruncate, { try calls.ftruncate(memfd, length: 8192) }),
                (.fcntl, { _ = try calls.fcntl(memfd, command: F_GETFD, argument: 0) }),
                (.fstat, { _ = try calls.fstat(memfd) }),
                (.readFile, { _ = try calls.readSmallFile(Paths.hypervisorType) }),
            ]
            for (call, body) in cases {
                host.xen.injectFault(.ioError, on: call, domain: host.backend.id)
                #expect(throws: Errno.ioError, "\(call)") { try body() }
            }
            host.xen.injectFault(.ioError, on: .fstat, domain: host.frontend.id)
            #expect(try calls.fstat(memfd).st_size == 4096, "a fault for another domain does not fire here")
            #expect(host.xen.census()[host.backend.id]?.descriptors == 3, "a faulted call made nothing")
        }

        @Test(arguments: SimulatedIoctl.allCases)
        func everyIoctlCanBeFaulted(_ ioctl: SimulatedIoctl) throws {
            let host = try Host()
            let calls = host.backend.system.calls
            let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
            let path: String? =
                switch ioctl {
                case .allocGref, .deallocGref, .gntallocSetUnmapNotify: Paths.gntalloc
                case .dmaBufSync, .dmaBufSetName: nil
                case .udmabufCreate, .udmabufCreateList: Paths.udmabuf
                case .dmaHeapAlloc: Paths.dmaHeaps + "system"
                case .evtchnBindInterdomain, .evtchnBindUnboundPort, .evtchnUnbind, .evtchnNotify, .evtchnReset: "/dev/xen/evtchn"
                case _ where "\(ioctl)".hasPrefix("drm"): "/dev/dri/card1"  // vkms
                default: Paths.gntdev
                }
            let fd = try path.map { try calls.open($0, flags: O_RDWR | O_CLOEXEC, mode: 0) } ?? buffer.fileDescriptor.rawValue
            defer { if path != nil { try? calls.close(fd) } }
            var argument = [UInt8](repeating: 0, count: 64)
            host.xen.injectFault(.resourceBusy, on: .ioctl(ioctl))
            #expect(throws: Errno.resourceBusy) {
                _ = try argument.withUnsafeMutableBytes { try calls.ioctl(fd, ioctl.request, $0.baseAddress) }
            }
        }

        @Test func gntallocsUnmapNotifyIsDecodedAsGntallocs() throws {
            let host = try Host()
            #expect(SimulatedIoctl.gntallocSetUnmapNotify.request == SimulatedIoctl.gntdevSetUnmapNotify.request)
            let shared = try GrantAllocator(on: host.backend.system).share(pages: 1, with: host.frontend.id)
            host.xen.injectFault(.noMemory, on: .ioctl(.gntdevSetUnmapNotify))
            try shared.setUnmapNotification(.clearByte(at: 0))
            host.xen.injectFault(.resourceBusy, on: .ioctl(.gntallocSetUnmapNotify))
            #expect(
                #expect(throws: XenGntError.self) { try shared.setUnmapNotification(.clearByte(at: 1)) }?.errno == .resourceBusy
            )
            let mapping = try host.gntdev().map(host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            #expect(
                #expect(throws: XenGntError.self) { try mapping.setUnmapNotification(.clearByte(at: 0)) }?.errno == .noMemory,
                "the gntdev fault stayed armed for gntdev"
            )
        }
    }
}
