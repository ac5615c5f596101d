internal import CXenGnt
public import SystemPackage

/// A dma-buf exported from another domain's grants. Owns the dma-buf descriptor.
///
/// Lend ``fileDescriptor`` to the driver that uses the buffer (DRM PRIME import, V4L2
/// `VIDIOC_QBUF` with `V4L2_MEMORY_DMABUF`). When the frontend wants its pages back, call
/// ``release()`` and wait on the ``PendingRelease`` it returns until every user has let go;
/// only then tell the frontend its grants are free.
///
/// Letting an `ExportedDmaBuf` go without `release()` closes the descriptor; the kernel frees
/// the buffer when its other users let go, and nobody is told.
public struct ExportedDmaBuf: ~Copyable, Sendable {
    let handle: DeviceHandle
    /// The dma-buf; lend it, do not close it (the kernel names the buffer by this number).
    public let fileDescriptor: FileDescriptor
    /// Pages in the buffer.
    public let pageCount: Int
    /// The domain whose grants back the buffer.
    public let domain: DomainID
    private var isOwned = true

    init(handle: DeviceHandle, fd: Int32, pageCount: Int, domain: DomainID) {
        self.handle = handle
        self.fileDescriptor = FileDescriptor(rawValue: fd)
        self.pageCount = pageCount
        self.domain = domain
    }

    /// The buffer's size in bytes: `pageCount × 4096`.
    public var byteCount: Int { pageCount * xenPageSize }

    /// An owned duplicate of the descriptor, for an API that takes ownership. The buffer counts
    /// as in use until the duplicate is closed too.
    ///
    /// The corresponding C function is `dup`.
    public func duplicate() throws(XenGntError) -> DmaBuf {
        do throws(Errno) {
            return DmaBuf(fd: try handle.calls.dup(fileDescriptor.rawValue), calls: handle.calls, size: byteCount)
        } catch {
            throw XenGntError(
                error == .badFileDescriptor ? .badFileDescriptor : .kernel,
                .duplicate,
                call: Call.dup,
                errno: error
            )
        }
    }

    /// Drops this process's reference to the buffer and returns a handle to wait until every
    /// other user (descriptors, importers, GEM handles) has let go.
    ///
    /// The descriptor number stays reserved (a /dev/null placeholder is `dup3`'d over it) until
    /// the ``PendingRelease`` goes away, so a concurrent export cannot reuse the number and make
    /// the wait watch the wrong buffer. That costs one `dup3` (and a `close` of the placeholder
    /// later) where a plain `close` would do: the price of never watching the wrong buffer.
    ///
    /// - Throws: if the placeholder cannot be put in place; the descriptor is closed then, and
    ///   the buffer is freed when its other users let go, unwatched.
    ///
    /// The corresponding C function is `dup3`.
    public consuming func release() throws(XenGntError) -> PendingRelease {
        isOwned = false
        do throws(XenGntError) {
            try handle.reserveNumber(fileDescriptor.rawValue)
        } catch {
            try? handle.calls.close(fileDescriptor.rawValue)
            throw error
        }
        return PendingRelease(handle: handle, fd: fileDescriptor.rawValue)
    }

    /// Releases the buffer and blocks until every user has let go, or `timeout` passes.
    ///
    /// - Throws: ``XenGntError/Code/timedOut`` when users remain; the kernel still frees the
    ///   buffer when they let go (and XenGnt frees the descriptor number then), but this
    ///   process is no longer told. Use ``release()`` and ``PendingRelease/wait(timeout:)`` to
    ///   be able to wait again.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED`.
    public consuming func releaseAndWait(timeout: Duration) throws(XenGntError) {
        let pending = try release()
        if try !pending.wait(timeout: timeout) {
            throw XenGntError(.timedOut, .waitReleased, call: Call.expWaitReleased, errno: .timedOut)
        }
    }

    /// Releases the buffer and waits, without blocking a thread, until every user has let go.
    ///
    /// - Throws: ``XenGntError/Code/cancelled`` if the task is cancelled first.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED`.
    public consuming func releaseAndWait(pollInterval: Duration = .milliseconds(2)) async throws(XenGntError) {
        let pending = try release()
        try await pending.waitUntilReleased(pollInterval: pollInterval)
    }

    deinit {
        if isOwned { try? handle.calls.close(fileDescriptor.rawValue) }
    }
}
