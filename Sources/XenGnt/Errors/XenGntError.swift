public import SystemPackage

/// The one error XenGnt's products throw: what the caller asked for (``operation``), the system
/// call or ioctl that failed (``call``) and the kernel's answer (``errno``), and what XenGnt
/// could infer (``code``, with the values it concerns as properties), in a sentence a user can
/// act on (``advice``).
///
/// ```swift
/// do {
///     let buffer = try gntdev.exportDmaBuf(refs: refs, from: frontend)
/// } catch {
///     // "exportDmaBuf: IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS failed with EINVAL: the kernel
///     //  refuses dma-buf export in an x86 PV domain ..."
///     log.error("\(error)")
///     if error.code == .exportRefusedInPV { /* share by import instead */ }
/// }
/// ```
///
/// Codes are values, not enum cases: match them with `==` or in a `switch` with a `default`
/// branch. New products (DRM, XenStore, event channels, rings) add codes without breaking code
/// that matches the existing ones.
///
/// Many kernel failures are a bare `EINVAL`. XenGnt refuses what it can before the call (an
/// empty list, a collection that yields a different number of elements than it claims, a
/// reserved domain id, undefined flags, hostile sizes) and, when the kernel does refuse, reads
/// what it needs to tell the causes apart (a module parameter, a buffer's size) only then.
public struct XenGntError: Error, Sendable, Hashable {
    /// What went wrong, as far as XenGnt can tell.
    public let code: Code
    /// What the caller asked for.
    public let operation: Operation
    /// The system call or ioctl that failed (`"lseek"`, `"IOCTL_GNTDEV_DMABUF_IMP_TO_REFS"`), or
    /// `nil` when XenGnt refused the request before calling the kernel.
    public let call: String?
    /// The kernel's answer to ``call``, or `nil` when the kernel was not asked.
    public let errno: Errno?

    /// The file or device the error concerns.
    public let path: String?
    /// The number of pages (or elements) the request named.
    public let count: Int?
    /// The number of elements a collection actually yielded, when it differs from its `count`.
    public let actualCount: Int?
    /// The limit that was exceeded (pages, or MiB for udmabuf's size limit).
    public let limit: Int?
    /// A byte offset the error concerns.
    public let offset: Int?
    /// A length in bytes the error concerns.
    public let length: Int?
    /// The domain the error concerns.
    public let domain: DomainID?
    /// Flag bits the error concerns.
    public let flags: UInt32?
    /// The event channel port the error concerns.
    public let port: UInt32?
    /// The guest type of the domain XenGnt runs in, when it shaped the explanation.
    public let guestType: GuestType?
    /// The allocation an export or buffer asked for, when it shaped the explanation.
    public let allocation: DmaBufAllocation?
    /// Further explanation: for ``Code/invalidArgument``, the sentence saying what is wrong.
    public let detail: String?

    /// An error of `operation`.
    ///
    /// - Parameters:
    ///   - code: what went wrong.
    ///   - operation: what the caller asked for.
    ///   - call: the system call or ioctl that failed; `nil` when the kernel was not asked.
    ///   - errno: the kernel's answer to `call`.
    ///   - path: the file or device concerned.
    ///   - count: the number of pages or elements the request named.
    ///   - actualCount: the number of elements a collection actually yielded.
    ///   - limit: the limit that was exceeded.
    ///   - offset: a byte offset concerned.
    ///   - length: a length in bytes concerned.
    ///   - domain: the domain concerned.
    ///   - flags: the flag bits concerned.
    ///   - port: the event channel port concerned.
    ///   - guestType: the guest type of this domain, when it shaped the explanation.
    ///   - allocation: the allocation asked for, when it shaped the explanation.
    ///   - detail: further explanation (the sentence of ``Code/invalidArgument``, or a daemon's
    ///     error string such as xenstored's).
    public init(
        _ code: Code,
        _ operation: Operation,
        call: String? = nil,
        errno: Errno? = nil,
        path: String? = nil,
        count: Int? = nil,
        actualCount: Int? = nil,
        limit: Int? = nil,
        offset: Int? = nil,
        length: Int? = nil,
        domain: DomainID? = nil,
        flags: UInt32? = nil,
        port: UInt32? = nil,
        guestType: GuestType? = nil,
        allocation: DmaBufAllocation? = nil,
        detail: String? = nil
    ) {
        self.code = code
        self.operation = operation
        self.call = call
        self.errno = errno
        self.path = path
        self.count = count
        self.actualCount = actualCount
        self.limit = limit
        self.offset = offset
        self.length = length
        self.domain = domain
        self.flags = flags
        self.port = port
        self.guestType = guestType
        self.allocation = allocation
        self.detail = detail
    }

    /// A refusal before the kernel was asked, with a sentence saying what is wrong.
    static func invalid(_ operation: Operation, _ detail: String) -> XenGntError {
        XenGntError(.invalidArgument, operation, detail: detail)
    }
}

extension XenGntError: CustomStringConvertible {
    /// One line: the operation, the call that failed and the errno, then what to do about it.
    ///
    /// `exportDmaBuf: IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS failed with EINVAL: the kernel ...`, or
    /// `exportDmaBuf: refused before calling the kernel: the request names no pages; ...`.
    public var description: String {
        var text = operation.name + ": "
        switch (call, errno) {
        case (let call?, let errno?): text += "\(call) failed with \(errno.symbolicName): "
        case (let call?, nil): text += "\(call) failed: "
        case (nil, let errno?): text += "failed with \(errno.symbolicName): "
        case (nil, nil): text += "refused before calling the kernel: "
        }
        return text + advice
    }
}
