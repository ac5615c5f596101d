import Testing
import XenDisplayBackend
import XenGnt

/// The protocol rules of one device, against resources that record what they were told.
@Suite struct SessionTests {
    /// Resources over a fake frontend memory: directory pages by ref, a log of calls.
    struct FakeResources: DisplayResources {
        var pages: [UInt32: [UInt8]] = [:]
        var log: [String] = []
        var nextGrant: UInt32 = 5000
        var flipsShowAtOnce = true
        var failAllocation = false
        var written: [UInt32: [UInt32]] = [:]
        var edid: [UInt8] = []

        mutating func addDirectory(_ ref: UInt32, next: UInt32 = 0, refs: [UInt32]) {
            var page = [UInt8](repeating: 0, count: 4096)
            for (i, word) in ([next] + refs).enumerated() {
                for b in 0..<4 { page[4 * i + b] = UInt8(truncatingIfNeeded: word >> (8 * UInt32(b))) }
            }
            pages[ref] = page
        }
        mutating func readDirectoryPage(_ ref: UInt32) throws(DisplayRefusal) -> [UInt8] {
            guard let page = pages[ref] else { throw DisplayRefusal(.fault, "ref \(ref) not granted") }
            return page
        }
        mutating func writeDirectoryPage(_ ref: UInt32, refs: ArraySlice<UInt32>) throws(DisplayRefusal) -> UInt32 {
            guard let page = pages[ref] else { throw DisplayRefusal(.fault, "ref \(ref) not granted") }
            written[ref] = Array(refs)
            return page.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        }
        mutating func attachFrontendBuffer(_ cookie: UInt64, refs: [UInt32], layout: DisplayBufferLayout) throws(DisplayRefusal) {
            log.append("attach \(cookie) \(refs.count)")
        }
        mutating func allocateBackendBuffer(_ cookie: UInt64, layout: DisplayBufferLayout) throws(DisplayRefusal) -> [UInt32] {
            if failAllocation { throw DisplayRefusal(.noMemory, "no memory") }
            log.append("allocate \(cookie) \(layout.pageCount)")
            defer { nextGrant += UInt32(layout.pageCount) }
            return (0..<UInt32(layout.pageCount)).map { nextGrant + $0 }
        }
        mutating func releaseBuffer(_ cookie: UInt64) { log.append("release buffer \(cookie)") }
        mutating func attachFramebuffer(
            _ cookie: UInt64,
            buffer: UInt64,
            width: Int,
            height: Int,
            format: DisplayPixelFormat
        ) throws(DisplayRefusal) {
            log.append("fb \(cookie) on \(buffer)")
        }
        mutating func releaseFramebuffer(_ cookie: UInt64) { log.append("release fb \(cookie)") }
        mutating func configure(connector: Int, framebuffer: UInt64?, width: Int, height: Int) throws(DisplayRefusal) {
            log.append("configure \(connector) \(framebuffer.map(String.init) ?? "off")")
        }
        mutating func flip(connector: Int, framebuffer: UInt64) throws(DisplayRefusal) -> Bool {
            log.append("flip \(connector) \(framebuffer)")
            return flipsShowAtOnce
        }
        mutating func writeFrontendPages(_ refs: [UInt32], bytes: [UInt8]) throws(DisplayRefusal) { edid = bytes }
    }

    let config = FrontendConfiguration(backendAllocates: false, connectors: [.init(index: 0, width: 640, height: 480)])
    let bufferBytes = UInt32(640 * 480 * 4)

    func create(_ cookie: UInt64, dir: UInt32 = 10, flags: UInt32 = 0, id: UInt16 = 0) -> DisplayRequest {
        DisplayRequest(
            id: id,
            .bufferCreate(
                .init(
                    bufferCookie: cookie,
                    width: 640,
                    height: 480,
                    bitsPerPixel: 32,
                    bufferSize: bufferBytes,
                    flags: flags,
                    directoryRef: dir
                )
            )
        )
    }
    func attach(_ fb: UInt64, to buffer: UInt64) -> DisplayRequest {
        DisplayRequest(
            id: 1,
            .framebufferAttach(
                .init(
                    bufferCookie: buffer,
                    framebufferCookie: fb,
                    width: 640,
                    height: 480,
                    pixelFormat: DisplayPixelFormat.xrgb8888.rawValue
                )
            )
        )
    }
    func configure(_ fb: UInt64) -> DisplayRequest {
        DisplayRequest(id: 2, .setConfiguration(.init(framebufferCookie: fb, width: 640, height: 480, bitsPerPixel: 32)))
    }

    /// A session with buffer 1 (300 pages from directory page 10) and framebuffer 2 shown.
    func connected(_ resources: inout FakeResources) -> DisplaySession {
        resources.addDirectory(10, refs: (0..<300).map { 100 + $0 })
        var session = DisplaySession(configuration: config)
        for request in [create(1), attach(2, to: 1), configure(2)] {
            #expect(session.handle(request, connector: 0, resources: &resources).response.status == .ok)
        }
        return session
    }

    @Test func modesetThenFlipsPostNumberedEvents() {
        var resources = FakeResources()
        var session = connected(&resources)
        #expect(resources.log == ["attach 1 300", "fb 2 on 1", "configure 0 2"])
        for n in 0..<3 {
            let (response, outcome) = session.handle(
                DisplayRequest(id: UInt16(10 + n), .pageFlip(framebufferCookie: 2)),
                connector: 0,
                resources: &resources
            )
            #expect(response == DisplayResponse(id: UInt16(10 + n), operation: .pageFlip, status: .ok))
            #expect(outcome == .flipEvent(connector: 0, DisplayEvent(id: UInt16(n), framebufferCookie: 2)))
        }
    }

    @Test func aLateFlipIsBusyUntilItCompletes() {
        var resources = FakeResources()
        resources.flipsShowAtOnce = false
        var session = connected(&resources)
        #expect(
            session.handle(DisplayRequest(id: 5, .pageFlip(framebufferCookie: 2)), connector: 0, resources: &resources).outcome
                == .none
        )
        #expect(
            session.handle(DisplayRequest(id: 6, .pageFlip(framebufferCookie: 2)), connector: 0, resources: &resources).response
                .status == .busy
        )
        #expect(session.flipCompleted(connector: 0) == DisplayEvent(id: 0, framebufferCookie: 2))
        #expect(session.flipCompleted(connector: 0) == nil)
        // A reconfiguration (or turning the connector off) while a flip is pending posts its
        // event at once, with the next id.
        _ = session.handle(DisplayRequest(id: 7, .pageFlip(framebufferCookie: 2)), connector: 0, resources: &resources)
        #expect(
            session.handle(configure(2), connector: 0, resources: &resources).outcome
                == .flipEvent(connector: 0, DisplayEvent(id: 1, framebufferCookie: 2))
        )
        _ = session.handle(DisplayRequest(id: 8, .pageFlip(framebufferCookie: 2)), connector: 0, resources: &resources)
        let off = DisplayRequest(id: 9, .setConfiguration(.init(framebufferCookie: 0, width: 0, height: 0, bitsPerPixel: 0)))
        #expect(
            session.handle(off, connector: 0, resources: &resources).outcome
                == .flipEvent(connector: 0, DisplayEvent(id: 2, framebufferCookie: 2))
        )
        #expect(session.connectors[0].configured == nil)
    }

    @Test func refusesOutOfOrderAndUnknownCookies() {
        var resources = FakeResources()
        resources.addDirectory(10, refs: (0..<300).map { 100 + $0 })
        var session = DisplaySession(configuration: config)
        func status(_ request: DisplayRequest, connector: Int = 0) -> DisplayStatus {
            session.handle(request, connector: connector, resources: &resources).response.status
        }
        #expect(status(DisplayRequest(id: 0, .pageFlip(framebufferCookie: 2))) == .notFound)
        #expect(status(attach(2, to: 1)) == .notFound)
        #expect(status(DisplayRequest(id: 0, .bufferDestroy(bufferCookie: 1))) == .notFound)
        #expect(status(DisplayRequest(id: 0, .framebufferDetach(framebufferCookie: 2))) == .notFound)
        #expect(status(configure(2)) == .notFound)
        #expect(status(create(1)) == .ok)
        #expect(status(create(1)) == .exists)
        #expect(status(attach(2, to: 1)) == .ok)
        #expect(status(DisplayRequest(id: 0, .pageFlip(framebufferCookie: 2))) == .invalid)  // before SET_CONFIG
        #expect(status(DisplayRequest(id: 0, .bufferDestroy(bufferCookie: 1))) == .busy)  // fb attached
        #expect(status(configure(2), connector: 1) == .invalid)  // no such ring
        #expect(status(create(3, flags: DisplayProtocol.flagRequestAllocation)) == .invalid)  // be-alloc=0
        #expect(status(DisplayRequest(id: 0, .unknown, operation: DisplayOperation(rawValue: 0x99))) == .notSupported)
        #expect(
            status(
                DisplayRequest(
                    id: 0,
                    .setConfiguration(.init(framebufferCookie: 2, x: UInt32.max, width: 2, height: 480, bitsPerPixel: 32))
                )
            ) == .invalid
        )
        #expect(
            status(
                DisplayRequest(id: 0, .setConfiguration(.init(framebufferCookie: 2, width: 640, height: 480, bitsPerPixel: 16)))
            ) == .invalid
        )
        #expect(
            status(
                DisplayRequest(
                    id: 0,
                    .framebufferAttach(
                        .init(
                            bufferCookie: 1,
                            framebufferCookie: 9,
                            width: 641,
                            height: 480,
                            pixelFormat: DisplayPixelFormat.xrgb8888.rawValue
                        )
                    )
                )
            ) == .invalid
        )
        #expect(
            status(
                DisplayRequest(
                    id: 0,
                    .framebufferAttach(.init(bufferCookie: 1, framebufferCookie: 9, width: 64, height: 48, pixelFormat: 0x1234))
                )
            ) == .invalid
        )
        #expect(session.liveBuffers == [1])
        #expect(session.liveFramebuffers == [2])
        #expect(status(DisplayRequest(id: 0, .framebufferDetach(framebufferCookie: 2))) == .ok)
        #expect(status(DisplayRequest(id: 0, .bufferDestroy(bufferCookie: 1))) == .ok)
        #expect(session.liveBuffers.isEmpty)
    }

    @Test func aBadDirectoryKeepsNothing() {
        var resources = FakeResources()
        resources.addDirectory(10, next: 0, refs: [1, 2, 3])  // 300 pages named, 1023 slots read: refs 0 after the 3rd
        var session = DisplaySession(configuration: config)
        #expect(session.handle(create(1), connector: 0, resources: &resources).response.status == .invalid)
        #expect(session.handle(create(1, dir: 77), connector: 0, resources: &resources).response.status == .fault)
        #expect(session.liveBuffers.isEmpty)
        #expect(resources.log.isEmpty)
    }

    @Test func backendAllocationWritesTheDirectory() {
        var resources = FakeResources()
        resources.addDirectory(10, refs: [])
        let beConfig = FrontendConfiguration(backendAllocates: true, connectors: [.init(index: 0, width: 640, height: 480)])
        var session = DisplaySession(configuration: beConfig)
        let response = session.handle(
            create(1, flags: DisplayProtocol.flagRequestAllocation),
            connector: 0,
            resources: &resources
        ).response
        #expect(response.status == .ok)
        #expect(resources.written[10] == (0..<300).map { 5000 + $0 })
        // A directory the frontend did not grant: the allocation is released again.
        #expect(
            session.handle(create(2, dir: 99, flags: DisplayProtocol.flagRequestAllocation), connector: 0, resources: &resources)
                .response.status == .fault
        )
        #expect(resources.log.suffix(2) == ["allocate 2 300", "release buffer 2"])
        resources.failAllocation = true
        #expect(
            session.handle(create(3, flags: DisplayProtocol.flagRequestAllocation), connector: 0, resources: &resources).response
                .status == .noMemory
        )
        #expect(session.liveBuffers == [1])
    }

    @Test func getEdidWritesTheBlock() {
        var resources = FakeResources()
        resources.addDirectory(20, refs: (0..<8).map { 200 + $0 })
        var session = DisplaySession(configuration: config)
        let (response, _) = session.handle(
            DisplayRequest(id: 4, .getEdid(.init(bufferSize: 32768, directoryRef: 20))),
            connector: 0,
            resources: &resources
        )
        #expect(response == DisplayResponse(id: 4, operation: .getEdid, status: .ok, edidSize: 128))
        #expect(EDID.preferredMode(resources.edid)?.width == 640)
        #expect(
            session.handle(
                DisplayRequest(id: 5, .getEdid(.init(bufferSize: 4096, directoryRef: 20))),
                connector: 0,
                resources: &resources
            ).response.status == .invalid
        )
    }

    @Test func tearDownReleasesInOrderAndRestartsEventIDs() {
        var resources = FakeResources()
        var session = connected(&resources)
        resources.addDirectory(11, refs: (0..<300).map { 900 + $0 })
        _ = session.handle(create(3, dir: 11), connector: 0, resources: &resources)
        _ = session.handle(attach(4, to: 3), connector: 0, resources: &resources)
        _ = session.handle(DisplayRequest(id: 9, .pageFlip(framebufferCookie: 4)), connector: 0, resources: &resources)
        resources.log = []
        session.tearDown(resources: &resources)
        #expect(resources.log == ["configure 0 off", "release fb 4", "release fb 2", "release buffer 3", "release buffer 1"])
        #expect(session.connectors[0].nextEventID == 0)
        #expect(session.liveBuffers.isEmpty && session.liveFramebuffers.isEmpty)
    }
}

/// The choice between export and copy for frontend-allocated buffers.
@Suite struct BufferPathPolicyTests {
    @Test func choosesExportOnlyWhereBothSidesAllowIt() {
        #expect(BufferPathPolicy(choice: .auto, backendGuest: .pvh, sinkTakesExports: true).decision == .export)
        #expect(BufferPathPolicy(choice: .auto, backendGuest: .hvm, sinkTakesExports: true).decision == .export)
        #expect(BufferPathPolicy(choice: .auto, backendGuest: .pv, sinkTakesExports: true).decision != .export)
        #expect(BufferPathPolicy(choice: .auto, backendGuest: .pvh, sinkTakesExports: false).decision != .export)
        #expect(BufferPathPolicy(choice: .copy, backendGuest: .pvh, sinkTakesExports: true).decision != .export)
        #expect(BufferPathPolicy(choice: .export, backendGuest: .pv, sinkTakesExports: true).exportImpossible)
    }

    @Test func aRefusedCommitFallsBackToCopyingOnlyInAuto() {
        let refusal = XenGntError(.kernel, .mapGrants)
        var auto = BufferPathPolicy(choice: .auto, backendGuest: .pvh, sinkTakesExports: true)
        guard case .copy(let reason)? = auto.exportRefused(refusal) else {
            Issue.record("no fallback")
            return
        }
        #expect(reason.contains("refused"))
        #expect(auto.decision != .export)
        var forced = BufferPathPolicy(choice: .export, backendGuest: .pvh, sinkTakesExports: true)
        #expect(forced.exportRefused(refusal) == nil)
    }
}
