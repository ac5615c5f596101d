extension XenGntError {
    /// What the caller asked for, named as in the API (`exportDmaBuf`, `share`).
    ///
    /// Operations are values: compare them with `==`. Products built on XenGnt add their own.
    public struct Operation: Hashable, Sendable, CustomStringConvertible {
        /// The operation's name, as in the API.
        public let name: String

        /// An operation called `name`.
        package init(_ name: String) { self.name = name }

        public var description: String { name }

        // MARK: Devices

        /// Opening a device node (`GrantDevice.init`, `GrantAllocator.init`).
        public static let openDevice = Operation("openDevice")
        /// Probing what the grant devices can do (``XenCapabilities/probe(on:)``).
        public static let probe = Operation("probe")

        // MARK: gntdev

        /// ``GrantDevice/map(_:from:access:)``: `IOCTL_GNTDEV_MAP_GRANT_REF`, then `mmap`.
        public static let mapGrants = Operation("mapGrants")
        /// ``GrantMapping/unmap()``: `munmap`, then `IOCTL_GNTDEV_UNMAP_GRANT_REF`.
        public static let unmapGrants = Operation("unmapGrants")
        /// Writing through a mapping (`withUnsafeMutableBytes`).
        public static let writeMapping = Operation("writeMapping")
        /// ``GrantDevice/mappedRange(containing:)``.
        public static let offsetForAddress = Operation("offsetForAddress")
        /// `setUnmapNotification` of a mapping or of shared pages.
        public static let setUnmapNotification = Operation("setUnmapNotification")
        /// ``GrantDevice/copy(_:)``.
        public static let grantCopy = Operation("grantCopy")
        /// ``GrantDevice/setMaxGrants(_:)``.
        public static let setMaxGrants = Operation("setMaxGrants")

        // MARK: gntdev dma-buf

        /// ``GrantDevice/exportDmaBuf(refs:from:allocation:)``.
        public static let exportDmaBuf = Operation("exportDmaBuf")
        /// ``ExportedDmaBuf/release()``: giving up the exporter's descriptor.
        public static let releaseExport = Operation("releaseExport")
        /// Waiting until every user of an exported buffer has let go.
        public static let waitReleased = Operation("waitReleased")
        /// ``GrantDevice/importDmaBuf(_:to:pageCount:)``.
        public static let importDmaBuf = Operation("importDmaBuf")
        /// ``DmaBufImport/release()``.
        public static let releaseImport = Operation("releaseImport")

        // MARK: gntalloc

        /// ``GrantAllocator/share(pages:with:access:)``.
        public static let share = Operation("share")
        /// ``SharedPages/unshare()``.
        public static let unshare = Operation("unshare")

        // MARK: dma-buf

        /// Allocating a dma-buf (``DmaBuf/udmabuf(pages:on:)``, ``DmaBuf/allocate(fromHeap:pages:on:)``).
        public static let createDmaBuf = Operation("createDmaBuf")
        /// ``DmaBuf/size()``.
        public static let dmaBufSize = Operation("dmaBufSize")
        /// ``DmaBuf/sync(_:_:)``.
        public static let dmaBufSync = Operation("dmaBufSync")
        /// ``DmaBuf/setName(_:)``.
        public static let dmaBufSetName = Operation("dmaBufSetName")
        /// ``DmaBuf/map(_:)``.
        public static let mapDmaBuf = Operation("mapDmaBuf")
        /// ``DmaBufMapping/unmap()``.
        public static let unmapDmaBuf = Operation("unmapDmaBuf")
        /// Duplicating a descriptor (`duplicate()`).
        public static let duplicate = Operation("duplicate")
        /// Closing a descriptor (`close()`).
        public static let close = Operation("close")

        // MARK: Events

        /// Waiting for a descriptor to become readable (the poll reader under every event sequence).
        public static let waitForEvents = Operation("waitForEvents")
    }
}

/// The names of the system calls and ioctls XenGnt reports in ``XenGntError/call``.
enum Call {
    static let open = "open"
    static let close = "close"
    static let dup = "dup"
    static let dup3 = "dup3"
    static let mmap = "mmap"
    static let munmap = "munmap"
    static let lseek = "lseek"
    static let read = "read"
    static let write = "write"
    static let poll = "poll"
    static let eventfd = "eventfd"
    static let memfdCreate = "memfd_create"
    static let ftruncate = "ftruncate"
    static let fcntl = "fcntl"
    static let mapGrantRef = "IOCTL_GNTDEV_MAP_GRANT_REF"
    static let unmapGrantRef = "IOCTL_GNTDEV_UNMAP_GRANT_REF"
    static let getOffsetForVaddr = "IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR"
    static let setMaxGrants = "IOCTL_GNTDEV_SET_MAX_GRANTS"
    static let gntdevSetUnmapNotify = "IOCTL_GNTDEV_SET_UNMAP_NOTIFY"
    static let grantCopy = "IOCTL_GNTDEV_GRANT_COPY"
    static let expFromRefs = "IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS"
    static let expWaitReleased = "IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED"
    static let impToRefs = "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS"
    static let impRelease = "IOCTL_GNTDEV_DMABUF_IMP_RELEASE"
    static let allocGref = "IOCTL_GNTALLOC_ALLOC_GREF"
    static let deallocGref = "IOCTL_GNTALLOC_DEALLOC_GREF"
    static let gntallocSetUnmapNotify = "IOCTL_GNTALLOC_SET_UNMAP_NOTIFY"
    static let dmaBufSync = "DMA_BUF_IOCTL_SYNC"
    static let dmaBufSetName = "DMA_BUF_SET_NAME"
    static let udmabufCreate = "UDMABUF_CREATE"
    static let dmaHeapAlloc = "DMA_HEAP_IOCTL_ALLOC"
}
