import XenGnt

extension GrantDisplayResources {
    public mutating func attachFramebuffer(
        _ cookie: UInt64,
        buffer: UInt64,
        width: Int,
        height: Int,
        format: DisplayPixelFormat
    ) throws(DisplayRefusal) {
        guard let owner = buffers[buffer] else { throw DisplayRefusal(.notFound, "buffer \(buffer)") }
        var framebuffer = Framebuffer(buffer: buffer, width: width, height: height, format: format)
        if pathPolicy.decision == .export, !owner.backendAllocated, !owner.refs.isEmpty {
            let layout = ExportLayout(
                width: width,
                height: height,
                format: format,
                pitch: owner.layout.pitch,
                offset: owner.layout.dataOffset
            )
            do {
                try sink.attachExport(
                    cookie,
                    refs: owner.refs.map { GrantRef(rawValue: $0) },
                    from: frontend,
                    through: gntdev,
                    layout: layout
                )
                framebuffer.exported = true
            } catch {
                try exportFailed(error)
            }
        }
        framebuffers[cookie] = framebuffer
    }

    public mutating func releaseFramebuffer(_ cookie: UInt64) {
        if framebuffers[cookie]?.exported == true { sink.releaseExport(cookie, for: key) }
        framebuffers[cookie] = nil
    }

    /// The display would not take an export: with `--buffer-path auto` every buffer of the
    /// device is copied from now on (they are mapped already), logged once; with `export` the
    /// refusal stands.
    mutating func exportFailed(_ error: XenGntError) throws(DisplayRefusal) {
        guard pathPolicy.exportRefused(error) != nil else {
            throw DisplayRefusal(.io, "--buffer-path export, but the display refused the export: \(error)")
        }
        for (cookie, framebuffer) in framebuffers where framebuffer.exported {
            sink.releaseExport(cookie, for: key)
            framebuffers[cookie]?.exported = false
        }
        counters.update(key) { $0.path = .copied }
        logger.notice(
            "\(key): copied: the display refused an exported buffer (\(error.code)); frontend buffers are copied at each flip from now on"
        )
    }

    public mutating func configure(connector: Int, framebuffer: UInt64?, width: Int, height: Int) throws(DisplayRefusal) {
        guard let framebuffer else {
            displayBuffers[connector] = nil
            sink.blank(key, connector: connector)
            return
        }
        guard framebuffers[framebuffer] != nil else { throw DisplayRefusal(.notFound, "framebuffer \(framebuffer)") }
    }

    public mutating func flip(connector: Int, framebuffer cookie: UInt64) throws(DisplayRefusal) -> Bool {
        guard let framebuffer = framebuffers[cookie], let buffer = buffers[framebuffer.buffer] else {
            throw DisplayRefusal(.notFound, "framebuffer \(cookie)")
        }
        let layout = buffer.layout
        let rowBytes = layout.pitch
        if framebuffer.exported, pathPolicy.decision == .export {
            do {
                // Zero-copy: the display scans out the frontend's pages.
                try sink.presentExport(cookie, for: key, connector: connector)
                counters.update(key) { $0.framesShown += 1 }
                noteShown(buffer.bytes, offset: layout.dataOffset, framebuffer, pitch: rowBytes, connector: connector)
                return true
            } catch {
                try exportFailed(error)
            }
        }
        let imageBytes = rowBytes * (framebuffer.height - 1) + framebuffer.width * (framebuffer.format.bytesPerPixel ?? 4)
        if buffer.sinkShared, framebuffer.format == .xrgb8888, framebuffer.width == layout.width {
            do {
                // Zero-copy: the display scans out its own buffer, which the frontend drew into.
                try sink.presentShared(framebuffer.buffer, for: key, connector: connector)
                counters.update(key) { $0.framesShown += 1 }
                noteShown(buffer.bytes, offset: layout.dataOffset, framebuffer, pitch: rowBytes, connector: connector)
                return true
            } catch {
                // Shown below as any frame is (copied into the CRTC's buffer, or headless).
            }
        }
        if buffer.backendAllocated {
            // Zero-copy: the sink reads the backend's buffer, which the frontend drew into.
            try present(buffer.bytes, offset: layout.dataOffset, framebuffer, pitch: rowBytes, connector: connector)
            return true
        }
        // The copy path: the frame as the frontend has it now, copied once into the display buffer.
        let source = buffer.bytes
        guard layout.dataOffset + imageBytes <= source.count else {
            throw DisplayRefusal(.io, "buffer \(framebuffer.buffer) unmapped")
        }
        // Taken out of the table while written, so the write does not copy it first (copy on write).
        var display = displayBuffers.removeValue(forKey: connector) ?? []
        if display.count != imageBytes { display = [UInt8](repeating: 0, count: imageBytes) }
        display.withUnsafeMutableBytes {
            $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[layout.dataOffset..<(layout.dataOffset + imageBytes)]))
        }
        displayBuffers[connector] = display
        counters.update(key) {
            $0.framesCopied += 1
            $0.bytesCopied += imageBytes
        }
        var failure: DisplayRefusal?
        display.withUnsafeBytes { bytes in
            do throws(DisplayRefusal) { try present(bytes, offset: 0, framebuffer, pitch: rowBytes, connector: connector) } catch
            { failure = error }
        }
        if let failure { throw failure }
        return true
    }

    private mutating func present(
        _ bytes: UnsafeRawBufferPointer,
        offset: Int,
        _ framebuffer: Framebuffer,
        pitch: Int,
        connector: Int
    ) throws(DisplayRefusal) {
        guard
            let view = FrameView(
                bytes: bytes,
                offset: offset,
                width: framebuffer.width,
                height: framebuffer.height,
                pitch: pitch,
                format: framebuffer.format
            )
        else {
            throw DisplayRefusal(.invalid, "framebuffer \(framebuffer.width)x\(framebuffer.height) does not lie in its buffer")
        }
        do { try sink.present(view, for: key, connector: connector) } catch {
            throw DisplayRefusal(.io, "showing connector \(connector): \(error)")
        }
        counters.update(key) { $0.framesShown += 1 }
        noteShown(view, connector: connector)
    }

    private mutating func noteShown(
        _ bytes: UnsafeRawBufferPointer,
        offset: Int,
        _ framebuffer: Framebuffer,
        pitch: Int,
        connector: Int
    ) {
        guard
            let view = FrameView(
                bytes: bytes,
                offset: offset,
                width: framebuffer.width,
                height: framebuffer.height,
                pitch: pitch,
                format: framebuffer.format
            )
        else { return }
        noteShown(view, connector: connector)
    }

    /// One line the first time a connector shows one of modetest's frames (the lab's check).
    private mutating func noteShown(_ view: FrameView, connector: Int) {
        if let pattern = TestPattern.classify(view), patternsSeen.insert("\(connector) \(pattern)").inserted {
            logger.info("\(key): connector \(connector) shows modetest's \(pattern.rawValue) frame")
        }
    }
}
