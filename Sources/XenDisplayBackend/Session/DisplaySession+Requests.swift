extension DisplaySession {
    mutating func createBuffer<R: DisplayResources>(
        _ create: DisplayRequest.BufferCreate,
        resources: inout R
    ) throws(DisplayRefusal) {
        guard buffers[create.bufferCookie] == nil else {
            throw DisplayRefusal(.exists, "DBUF_CREATE of buffer \(create.bufferCookie), which exists")
        }
        if create.backendAllocates, !configuration.backendAllocates {
            throw DisplayRefusal(.invalid, "DBUF_CREATE asks the backend to allocate, but be-alloc is 0")
        }
        let layout = try DisplayBufferLayout(create, limits: limits)
        if create.backendAllocates {
            // Allocate first: the directory is only written once there is something to put in it.
            let refs = try resources.allocateBackendBuffer(create.bufferCookie, layout: layout)
            do throws(DisplayRefusal) {
                guard refs.count == layout.pageCount else {
                    throw DisplayRefusal(.io, "the allocation granted \(refs.count) pages for \(layout.pageCount)")
                }
                try PageDirectory.writeRefs(refs, start: create.directoryRef) { (ref, slice) throws(DisplayRefusal) -> UInt32 in
                    try resources.writeDirectoryPage(ref, refs: slice)
                }
            } catch {
                resources.releaseBuffer(create.bufferCookie)
                throw error
            }
        } else {
            let (refs, _) = try PageDirectory.readRefs(start: create.directoryRef, pageCount: layout.pageCount) {
                (ref) throws(DisplayRefusal) -> [UInt8] in try resources.readDirectoryPage(ref)
            }
            try resources.attachFrontendBuffer(create.bufferCookie, refs: refs, layout: layout)
        }
        buffers[create.bufferCookie] = Buffer(layout: layout, backendAllocated: create.backendAllocates)
        bufferOrder.append(create.bufferCookie)
    }

    mutating func attachFramebuffer<R: DisplayResources>(
        _ attach: DisplayRequest.FramebufferAttach,
        resources: inout R
    ) throws(DisplayRefusal) {
        guard framebuffers[attach.framebufferCookie] == nil else {
            throw DisplayRefusal(.exists, "FB_ATTACH of framebuffer \(attach.framebufferCookie), which exists")
        }
        guard let buffer = buffers[attach.bufferCookie] else {
            throw DisplayRefusal(.notFound, "FB_ATTACH to unknown buffer \(attach.bufferCookie)")
        }
        let format = DisplayPixelFormat(rawValue: attach.pixelFormat)
        guard let bytesPerPixel = format.bytesPerPixel else {
            throw DisplayRefusal(.invalid, "FB_ATTACH of unknown pixel format \(format)")
        }
        guard bytesPerPixel * 8 <= buffer.layout.bitsPerPixel else {  // rows then lie within the pitch
            throw DisplayRefusal(.invalid, "FB_ATTACH of \(format) to a \(buffer.layout.bitsPerPixel)-bit buffer")
        }
        guard buffer.layout.fits(width: attach.width, height: attach.height) else {
            throw DisplayRefusal(
                .invalid,
                "FB_ATTACH of \(attach.width)x\(attach.height) to a \(buffer.layout.width)x\(buffer.layout.height) buffer"
            )
        }
        try resources.attachFramebuffer(
            attach.framebufferCookie,
            buffer: attach.bufferCookie,
            width: Int(attach.width),
            height: Int(attach.height),
            format: format
        )
        framebuffers[attach.framebufferCookie] = Framebuffer(
            buffer: attach.bufferCookie,
            width: Int(attach.width),
            height: Int(attach.height),
            format: format
        )
        framebufferOrder.append(attach.framebufferCookie)
        buffers[attach.bufferCookie]?.framebuffers.insert(attach.framebufferCookie)
    }

    mutating func setConfiguration<R: DisplayResources>(
        _ config: DisplayRequest.Configuration,
        connector: Int,
        resources: inout R
    ) throws(DisplayRefusal) -> Outcome {
        if config.disables {
            try resources.configure(connector: connector, framebuffer: nil, width: 0, height: 0)
            connectors[connector].configured = nil
            return completePendingFlip(connector)
        }
        guard let framebuffer = framebuffers[config.framebufferCookie] else {
            throw DisplayRefusal(.notFound, "SET_CONFIG with unknown framebuffer \(config.framebufferCookie)")
        }
        let (right, o1) = config.x.addingReportingOverflow(config.width)
        let (bottom, o2) = config.y.addingReportingOverflow(config.height)
        guard config.width > 0, config.height > 0, !o1, !o2, right <= framebuffer.width, bottom <= framebuffer.height else {
            throw DisplayRefusal(
                .invalid,
                "SET_CONFIG of \(config.width)x\(config.height)+\(config.x)+\(config.y) on a \(framebuffer.width)x\(framebuffer.height) framebuffer"
            )
        }
        guard let bytesPerPixel = framebuffer.format.bytesPerPixel, config.bitsPerPixel == bytesPerPixel * 8 else {
            throw DisplayRefusal(.invalid, "SET_CONFIG at \(config.bitsPerPixel) bpp for a \(framebuffer.format) framebuffer")
        }
        try resources.configure(
            connector: connector,
            framebuffer: config.framebufferCookie,
            width: Int(config.width),
            height: Int(config.height)
        )
        connectors[connector].configured = config.framebufferCookie
        return completePendingFlip(connector)
    }

    /// A reconfiguration ends a pending flip: its event is posted now, so the driver does not
    /// wait 3.1 s for it and complete it itself.
    mutating func completePendingFlip(_ connector: Int) -> Outcome {
        guard let event = flipCompleted(connector: connector) else { return .none }
        return .flipEvent(connector: connector, event)
    }

    mutating func pageFlip<R: DisplayResources>(
        _ cookie: UInt64,
        connector: Int,
        resources: inout R
    ) throws(DisplayRefusal) -> Outcome {
        guard framebuffers[cookie] != nil else {
            throw DisplayRefusal(.notFound, "PG_FLIP to unknown framebuffer \(cookie)")
        }
        guard connectors[connector].configured != nil else {
            throw DisplayRefusal(.invalid, "PG_FLIP on connector \(connector) before SET_CONFIG")
        }
        guard connectors[connector].pendingFlip == nil else {
            throw DisplayRefusal(.busy, "PG_FLIP on connector \(connector) while a flip is pending")
        }
        connectors[connector].pendingFlip = cookie
        let shown: Bool
        do throws(DisplayRefusal) { shown = try resources.flip(connector: connector, framebuffer: cookie) } catch {
            connectors[connector].pendingFlip = nil
            throw error
        }
        connectors[connector].configured = cookie
        guard shown, let event = flipCompleted(connector: connector) else { return .none }
        return .flipEvent(connector: connector, event)
    }

    mutating func getEdid<R: DisplayResources>(
        _ request: DisplayRequest.EdidRequest,
        connector: Int,
        resources: inout R
    ) throws(DisplayRefusal) -> UInt32 {
        guard request.bufferSize >= DisplayProtocol.edidMaxSize else {
            throw DisplayRefusal(
                .invalid,
                "GET_EDID with a \(request.bufferSize)-byte buffer, less than \(DisplayProtocol.edidMaxSize)"
            )
        }
        let pages = (Int(request.bufferSize) + DisplayProtocol.pageSize - 1) / DisplayProtocol.pageSize
        guard pages <= 64 else { throw DisplayRefusal(.tooBig, "GET_EDID with a \(request.bufferSize)-byte buffer") }
        let c = configuration.connectors[connector]
        guard let edid = EDID(width: c.width, height: c.height, uniqueID: c.uniqueID) else {
            throw DisplayRefusal(.notSupported, "no EDID base block describes \(c.width)x\(c.height)")
        }
        let (refs, _) = try PageDirectory.readRefs(start: request.directoryRef, pageCount: pages) {
            (ref) throws(DisplayRefusal) -> [UInt8] in try resources.readDirectoryPage(ref)
        }
        try resources.writeFrontendPages(refs, bytes: edid.bytes)
        return UInt32(edid.bytes.count)
    }
}
