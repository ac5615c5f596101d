import SystemPackage
import Testing
import XenGnt
import XenGntTesting

/// Each operation makes the system calls of the raw sequence and no more: in a PV guest every
/// system call costs tens of microseconds, which a benchmark on a null seam cannot see. Where
/// XenGnt adds one for safety, the test names it.
extension Simulated {
    @Suite struct SyscallBudget {
        @Test func shareIsAllocGrefAndMmapAndUnshareIsMunmapAndDealloc() throws {
            let host = try Host()
            let recorder = SeamRecorder(host.dom0.system)
            let allocator = try GrantAllocator(on: recorder.system)
            var shared: SharedPages?
            #expect(
                try recorder.calls { shared = try allocator.share(pages: 4, with: host.frontend.id) }
                    == ["IOCTL_GNTALLOC_ALLOC_GREF", "mmap"]
            )
            #expect(try recorder.calls { try shared.take()!.unshare() } == ["munmap", "IOCTL_GNTALLOC_DEALLOC_GREF"])
        }

        @Test func mapIsMapGrantRefAndMmapAndUnmapIsMunmapAndUnmapGrantRef() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(3, to: host.backend.id)
            let recorder = SeamRecorder(host.backend.system)
            let gntdev = try GrantDevice(on: recorder.system)
            var mapping: GrantMapping?
            #expect(
                try recorder.calls { mapping = try gntdev.map(refs, from: host.frontend.id) } == [
                    "IOCTL_GNTDEV_MAP_GRANT_REF", "mmap",
                ]
            )
            #expect(try recorder.calls { try mapping.take()!.unmap() } == ["munmap", "IOCTL_GNTDEV_UNMAP_GRANT_REF"])
        }

        @Test func exportIsOneIoctlAndItsReleaseAddsOnlyThePlaceholderThatBuysFdSafety() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(3, to: host.backend.id)
            let recorder = SeamRecorder(host.backend.system)
            let gntdev = try GrantDevice(on: recorder.system)
            var exported: ExportedDmaBuf?
            #expect(
                try recorder.calls { exported = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id) } == [
                    "IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS"
                ]
            )
            var pending: PendingRelease?
            // The raw sequence is close + wait; XenGnt dup3s a placeholder over the number instead
            // of closing it (opening /dev/null once per device), and closes the placeholder when
            // the wait is over: the price of never watching the wrong buffer.
            #expect(try recorder.calls { pending = try exported.take()!.release() } == ["open /dev/null", "dup3"])
            var released = false
            #expect(
                try recorder.calls { released = try pending!.wait(timeout: .seconds(1)) } == [
                    "IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED"
                ]
            )
            #expect(released)
            #expect(recorder.calls { pending = nil } == ["close"], "no second wait once the kernel said released")
            var second: ExportedDmaBuf? = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id)
            #expect(
                try recorder.calls { _ = try second.take()!.release() } == [
                    "dup3", "IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED", "close",
                ],
                "a placeholder dropped unwaited asks once whether it may be freed"
            )
        }

        @Test func importIsOneIoctlAndItsReleaseOneMore() throws {
            let host = try Host()
            let recorder = SeamRecorder(host.backend.system)
            let gntdev = try GrantDevice(on: recorder.system)
            var buffer: DmaBuf? = try DmaBuf.udmabuf(pages: 2, on: recorder.system)
            var imported: DmaBufImport?
            #expect(
                try recorder.calls { imported = try gntdev.importDmaBuf(buffer.take()!, to: host.frontend.id) } == [
                    "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS"
                ]
            )
            var back: DmaBuf?
            #expect(try recorder.calls { back = try imported.take()!.release() } == ["IOCTL_GNTDEV_DMABUF_IMP_RELEASE"])
            #expect(try back?.size() == 8192, "the buffer handed back knows its size")
            #expect(recorder.calls { back = nil } == ["close"])
            // An adopted descriptor of unknown size costs one lseek, when no count is given.
            var adopted: DmaBuf? = DmaBuf(
                adopting: try DmaBuf.udmabuf(pages: 1, on: host.backend.system).take(),
                on: recorder.system
            )
            #expect(
                try recorder.calls { _ = try gntdev.importDmaBuf(adopted.take()!, to: host.frontend.id) }.prefix(2) == [
                    "lseek", "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS",
                ]
            )
        }

        @Test func aDeviceOpensOnceAndReadsWhatItNeedsOnlyThen() throws {
            let host = try Host()
            let recorder = SeamRecorder(host.backend.system)
            _ = try recorder.calls { _ = try GrantDevice(on: recorder.system) }
            _ = try GrantAllocator(on: recorder.system)
            #expect(
                !recorder.calls.contains { $0.contains("parameters/limit") },
                "no module parameter is read before it explains a refusal"
            )
        }
    }
}
