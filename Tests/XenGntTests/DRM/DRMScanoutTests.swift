import CDRM
import Synchronization
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

@testable import XenGntDRM

extension Simulated {
    /// Mode setting, flips, events and writeback capture on the simulated displays (lab
    /// `drm-vkms-scanout`).
    @Suite(.noDescriptorLeaks) struct DRMScanouts {
        @Test(arguments: ["vkms", "xengnt-dma-scanout"])
        func aModeSetShowsTheFrameAndWritebackReadsItBack(_ driver: String) async throws {
            let host = try displayHost()
            let display = try DRMDevice(driver: driver, on: host.backend.system)
            let buffer = try display.createDumbBuffer(width: 32, height: 24)
            try draw(buffer, seed: 1)
            var scanout = try Scanout(on: display, showing: try display.addFramebuffer(buffer), mode: smallMode)
            let (atomic, mode, connector, before) = (
                scanout.usesAtomic, scanout.mode, scanout.connector.name, scanout.captureMovesCRTC
            )
            #expect(atomic && mode == smallMode && connector == "Virtual-1" && before == nil)
            let screen = try await scanout.captureScreen()
            #expect(screen.rgb == picture(seed: 1) && screen.width == 32 && screen.height == 24)
            // vkms's writeback encoder cannot clone; the DMA display's can.
            let moves = scanout.captureMovesCRTC
            #expect(moves == (driver == "vkms"))
            #expect(try await scanout.captureScreen().pixels.allSatisfy { $0 >> 24 == 0xFF }, "X is written as 0xff")
            let shown = try display.resources().crtcs[0]
            #expect(shown.framebufferID != 0 && shown.mode?.width == 32)
            try scanout.turnOff().remove()
            #expect(try display.resources().crtcs[0].mode == nil, "off")
            try buffer.destroy()
        }

        @Test func theScreenChangesOnlyAtTheVblankAfterAFlip() async throws {
            let host = try displayHost()
            host.backend.displayClock = .manual
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            let first = try vkms.createDumbBuffer(width: 32, height: 24)
            let second = try vkms.createDumbBuffer(width: 32, height: 24)
            try draw(first, seed: 1)
            try draw(second, seed: 2)
            var scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(first), mode: smallMode)
            #expect(try await scanout.captureScreen().rgb == picture(seed: 1))
            try scanout.flip(to: try vkms.addFramebuffer(second))
            var pending = scanout.isFlipPending
            #expect(pending)
            // No vblank, no flip-complete event.
            do {
                _ = try await scanout.waitForFlip(timeout: .milliseconds(50))
                Issue.record("a flip completed without a vblank")
            } catch {
                #expect(error.code == .displayTimedOut)
            }
            pending = scanout.isFlipPending
            #expect(pending)
            // A capture waits behind the pending flip (the kernel's stall) until the vblank.
            let ticked = Atomic<Bool>(false)
            let domain = host.backend
            let ticker = Task {
                try await Task.sleep(for: .milliseconds(100))
                ticked.store(true, ordering: .sequentiallyConsistent)
                domain.vblank()
            }
            let screen = try await scanout.captureScreen()
            let afterTheVblank = ticked.load(ordering: .sequentiallyConsistent)
            #expect(afterTheVblank, "the capture returned before the vblank")
            #expect(screen.rgb == picture(seed: 2))
            try await ticker.value
            let offScreen = try await scanout.waitForFlip(timeout: .seconds(1))
            pending = scanout.isFlipPending
            #expect(!pending && offScreen.info.width == 32)
            try offScreen.remove()
            try scanout.turnOff().remove()
        }

        @Test func aBlockingWaitReturnsAtTheFlipsVblankAndTimesOutWithoutOne() async throws {
            let host = try displayHost()
            host.backend.displayClock = .manual
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            let first = try vkms.createDumbBuffer(width: 32, height: 24)
            let second = try vkms.createDumbBuffer(width: 32, height: 24)
            try draw(second, seed: 2)
            var scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(first), mode: smallMode)
            try scanout.flip(to: try vkms.addFramebuffer(second))
            do {
                _ = try scanout.waitForFlipBlocking(timeout: .milliseconds(30))
                Issue.record("the wait returned without a vblank")
            } catch {
                #expect(error.code == .displayTimedOut)
            }
            var pending = scanout.isFlipPending
            #expect(pending)
            // A vblank from another thread ends a wait blocked in poll.
            let backend = host.backend
            let ticker = Task.detached {
                try await Task.sleep(for: .milliseconds(20))
                backend.vblank()
            }
            try scanout.waitForFlipBlocking(timeout: .seconds(5)).remove()
            try await ticker.value
            pending = scanout.isFlipPending
            #expect(!pending)
            host.backend.displayClock = .automatic
            #expect(try await scanout.captureScreen().rgb == picture(seed: 2))
            try scanout.turnOff().remove()
            try first.destroy()
            try second.destroy()
        }

        @Test func flipsCompleteWithTheirEventsOnTheAutomaticClock() async throws {
            let host = try displayHost()
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            let even = try vkms.createDumbBuffer(width: 32, height: 24)
            let odd = try vkms.createDumbBuffer(width: 32, height: 24)
            try draw(even, seed: 5)
            try draw(odd, seed: 6)
            var scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(even), mode: smallMode)
            for round in 1...4 {
                try scanout.flip(to: round % 2 == 0 ? try vkms.addFramebuffer(even) : try vkms.addFramebuffer(odd))
                do {
                    try scanout.flip(to: try vkms.addFramebuffer(even))
                    Issue.record("a second flip was scheduled")
                } catch {
                    #expect(error.code == .flipPending && error.errno == nil)
                }
                try await scanout.waitForFlip().remove()
                #expect(try await scanout.captureScreen().rgb == picture(seed: round % 2 == 0 ? 5 : 6))
            }
            // completeFlip for a caller reading the events itself.
            try scanout.flip(to: try vkms.addFramebuffer(even))
            var events = vkms.events().makeAsyncIterator()
            var returned = false
            while !returned, let event = try await events.next() {
                let unrelated = scanout.completeFlip(
                    DRMEvent(kind: .vblank, userData: event.userData, crtcID: 0, sequence: 0, timestamp: .zero)
                )
                let ignored = unrelated == nil
                #expect(ignored)
                let crtc = scanout.crtc.id
                if let old = scanout.completeFlip(event) {
                    #expect(event.kind == .flipComplete && event.crtcID == crtc)
                    try old.remove()
                    returned = true
                }
            }
            #expect(returned)
            try scanout.turnOff().remove()
        }

        @Test func aFlipIsOneIoctlAndItsWaitIsThePollReader() async throws {
            let host = try displayHost()
            let recorder = SeamRecorder(host.backend.system)
            let vkms = try DRMDevice(driver: "vkms", on: recorder.system)
            let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
            var scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(buffer), mode: smallMode)
            let next = try vkms.addFramebuffer(buffer)
            var mark = recorder.count
            try scanout.flip(to: next)
            #expect(named(recorder.since(mark)) == ["DRM_IOCTL_MODE_ATOMIC"])
            mark = recorder.count
            try await scanout.waitForFlip().remove()
            let wait = named(recorder.since(mark))
            #expect(
                wait.contains("poll") && wait.contains("read")
                    && !wait.contains { $0.hasPrefix("DRM_IOCTL") && $0 != "DRM_IOCTL_MODE_RMFB" },
                "\(wait)"
            )
            try scanout.turnOff().remove()
        }

        @Test func vblankEventsAreDelivered() async throws {
            let host = try displayHost()
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
            expectDRMError(.kernel, errno: .invalidArgument) { try vkms.requestVblankEvent(crtcIndex: 0) }  // the CRTC is off
            let scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(buffer), mode: smallMode)
            try vkms.requestVblankEvent(crtcIndex: scanout.crtc.index, userData: 41)
            try vkms.requestVblankEvent(crtcIndex: scanout.crtc.index, userData: 42)
            var events = vkms.events().makeAsyncIterator()
            let first = try #require(try await events.next())
            let second = try #require(try await events.next())
            #expect(first.kind == .vblank && first.userData == 41 && first.crtcID == scanout.crtc.id)
            #expect(second.userData == 42 && second.sequence >= first.sequence && second.timestamp >= first.timestamp)
            expectDRMError(.kernel, errno: .invalidArgument) { try vkms.requestVblankEvent(crtcIndex: 1) }
            try scanout.turnOff().remove()
        }

        @Test func waitingForEventsIsCancellable() async throws {
            let host = try displayHost()
            host.backend.displayClock = .manual
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            let reader = Task { () async throws(XenGntError) -> DRMEvent? in
                var events = vkms.events().makeAsyncIterator()
                return try await events.next()
            }
            try await Task.sleep(for: .milliseconds(50))
            reader.cancel()
            let result = await reader.result
            guard case .failure(let error) = result else {
                Issue.record("the wait ended without an error")
                return
            }
            #expect((error as? XenGntError)?.code == .cancelled)
        }

        @Test func formatsThePlaneDoesNotTakeAreRefusedBeforeTheKernel() throws {
            let host = try displayHost()
            let recorder = SeamRecorder(host.backend.system)
            let vkms = try DRMDevice(driver: "vkms", on: recorder.system)
            let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
            let alpha = try vkms.addFramebuffer(buffer, format: .argb8888)
            let mark = recorder.count
            let error = expectDRMError(.formatNotSupported, errno: .some(nil)) {
                try vkms.checkScanout(of: alpha, mode: smallMode)
            }
            #expect(error?.advice.contains("AR24") == true && error?.detail == "XR24, XR48, RG16")
            #expect(!named(recorder.since(mark)).contains("DRM_IOCTL_MODE_ATOMIC"))
            // The DMA display's primary plane takes AR24.
            let dma = try DRMDevice(driver: "xengnt-dma-scanout", on: host.backend.system)
            try dma.checkScanout(
                of: try dma.addFramebuffer(dma.createDumbBuffer(width: 32, height: 24), format: .argb8888),
                mode: smallMode
            )
            // A framebuffer smaller than the mode cannot cover it.
            let small = try vkms.addFramebuffer(buffer)
            expectDRMError(.noDisplay, errno: .some(nil)) {
                try vkms.checkScanout(of: small, mode: DisplayMode(width: 64, height: 48))
            }
        }

        @Test func buffersWithoutVmapPassTestOnlyButNotTheRealCommitOnVkms() throws {
            let host = try displayHost()
            let system = host.backend.system
            let vkms = try DRMDevice(driver: "vkms", on: system)
            let layout = FramebufferLayout(width: 32, height: 24)
            let udmabuf = try vkms.addFramebuffer(vkms.importPrime(DmaBuf.udmabuf(pages: 1, on: system)), layout: layout)
            try vkms.checkScanout(of: udmabuf, mode: smallMode, by: .testOnly)
            let error = expectDRMError(.displayCannotReadBuffer, errno: .invalidArgument) {
                try vkms.checkScanout(of: udmabuf, mode: smallMode)
            }
            #expect(error?.call == "DRM_IOCTL_MODE_ATOMIC" && error?.detail == "vkms" && error?.advice.contains("vmap") == true)
            let heap = try vkms.addFramebuffer(
                vkms.importPrime(DmaBuf.allocate(fromHeap: "system", pages: 1, on: system)),
                layout: layout
            )
            try vkms.checkScanout(of: heap, mode: smallMode)
            // The DMA display reads any buffer.
            let dma = try DRMDevice(driver: "xengnt-dma-scanout", on: system)
            try dma.checkScanout(
                of: try dma.addFramebuffer(dma.importPrime(DmaBuf.udmabuf(pages: 1, on: system)), layout: layout),
                mode: smallMode
            )
        }

        @Test func aDriverWithoutAtomicUsesSetCRTCAndPageFlip() async throws {
            let host = try displayHost()
            let recorder = SeamRecorder(host.backend.system)
            let vkms = try DRMDevice(driver: "vkms", on: recorder.system)
            let first = try vkms.createDumbBuffer(width: 32, height: 24)
            let second = try vkms.createDumbBuffer(width: 32, height: 24)
            // The driver answers DRM_CLIENT_CAP_ATOMIC with EOPNOTSUPP, as a legacy driver does.
            host.xen.injectFault(.notSupported, on: .ioctl(.drmSetClientCap))
            var scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(first), mode: smallMode)
            let atomic = scanout.usesAtomic
            #expect(!atomic)
            try scanout.flip(to: try vkms.addFramebuffer(second))
            try await scanout.waitForFlip().remove()
            do {
                _ = try await scanout.captureScreen()
                Issue.record("a legacy scanout captured")
            } catch {
                #expect(error.code == .atomicRequired)
            }
            try scanout.turnOff().remove()
            let calls = named(recorder.calls)
            #expect(
                calls.contains("DRM_IOCTL_MODE_SETCRTC") && calls.contains("DRM_IOCTL_MODE_PAGE_FLIP")
                    && !calls.contains("DRM_IOCTL_MODE_ATOMIC")
            )
            #expect(try vkms.resources().crtcs[0].mode == nil)
        }

        @Test func captureTargetsMustFitTheWritebackConnector() async throws {
            let host = try displayHost()
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
            var scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(buffer), mode: smallMode)
            let big = try vkms.addFramebuffer(vkms.createDumbBuffer(width: 64, height: 48))
            let alpha = try vkms.addFramebuffer(buffer, format: .argb8888)
            let other = try DRMDevice(driver: "vkms", on: host.backend.system)
            let foreign = try other.addFramebuffer(other.createDumbBuffer(width: 32, height: 24))
            var details: [String] = []
            for target in 0..<3 {
                do {
                    switch target {
                    case 0: try await scanout.capture(into: big)
                    case 1: try await scanout.capture(into: alpha)
                    default: try await scanout.capture(into: foreign)
                    }
                    Issue.record("capture \(target) was taken")
                } catch {
                    #expect(error.code == .writebackTarget && error.errno == nil)
                    details.append(error.detail ?? "")
                }
            }
            #expect(details.first?.contains("64×48") == true)
            try scanout.turnOff().remove()
        }

        @Test func droppingAScanoutTurnsTheCRTCOffFirst() throws {
            let host = try displayHost()
            let recorder = SeamRecorder(host.backend.system)
            let vkms = try DRMDevice(driver: "vkms", on: recorder.system)
            let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
            var mark = 0
            do {
                var scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(buffer), mode: smallMode)
                try scanout.flip(to: try vkms.addFramebuffer(buffer))
                mark = recorder.count
            }
            #expect(named(recorder.since(mark)) == ["DRM_IOCTL_MODE_ATOMIC", "DRM_IOCTL_MODE_RMFB", "DRM_IOCTL_MODE_RMFB"])
            let owners = vkms.file.owners(of: buffer.handle)
            #expect(try vkms.resources().crtcs[0].mode == nil && owners == 1)
        }
    }
}
