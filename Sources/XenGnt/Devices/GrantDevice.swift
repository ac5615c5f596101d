internal import CXenGnt
import SystemPackage

/// The grant-mapping device, `/dev/xen/gntdev`: maps pages other domains granted to this one,
/// turns them into dma-bufs (export), and turns local dma-bufs into grants (import).
///
/// A device is a shared handle: one instance can be used from many tasks at once. What it hands
/// out — ``GrantMapping``, ``ExportedDmaBuf``, ``DmaBufImport`` — are `~Copyable` owners that
/// keep the device open and release their kernel resource when they go away.
///
/// ```swift
/// let gntdev = try GrantDevice()                       // on: .kernel
/// let frame = try gntdev.exportDmaBuf(refs: refs, from: frontend)
/// try drm.importPrime(frame.fileDescriptor)            // zero-copy to the display
/// ```
public final class GrantDevice: Sendable {
    let handle: DeviceHandle

    /// Where this device was opened (the kernel, or a simulated domain).
    public let system: XenSystem

    /// The guest type of the domain this runs in, as the device saw it when opened; `nil` when
    /// it could not be read (no `/sys/hypervisor`). Used to explain errors.
    public let guestType: GuestType?

    /// The most pages one request can name whatever the kernel's limit: 2^24 pages (64 GiB).
    /// No Xen grant table holds that many entries (Xen's default maximum is 32768), so a larger
    /// count is refused before any allocation or system call.
    public static let maximumPageCount = 1 << 24

    /// Opens `/dev/xen/gntdev`.
    ///
    /// - Throws: ``XenGntError`` with ``XenGntError/Code/deviceMissing`` when the device does
    ///   not exist (not a Xen domain, or no gntdev driver), or
    ///   ``XenGntError/Code/permissionDenied``.
    ///
    /// The corresponding C function is `open`.
    public init(on system: XenSystem = .kernel) throws(XenGntError) {
        self.system = system
        self.handle = try DeviceHandle(path: Paths.gntdev, calls: system.calls)
        self.guestType = GuestType.detect(system.calls)
    }

    /// The most pages one request may name: gntdev's `limit` module parameter, read now (it can
    /// change at run time), or the kernel's default, 65536, when it cannot be read.
    ///
    /// XenGnt does not read it before a request (that would cost a system call each time); it
    /// reads it to explain a request the kernel refused.
    public var perCallLimit: Int {
        handle.readInteger(Paths.gntdevLimit) ?? defaultGntdevLimit
    }

    /// Refuses a page count no request can carry, before anything is allocated or sent.
    @usableFromInline
    func validate(count: Int, for operation: XenGntError.Operation) throws(XenGntError) {
        if count <= 0 { throw XenGntError(.emptyRequest, operation, count: count) }
        if count > Self.maximumPageCount {
            throw XenGntError(.tooManyPages, operation, count: count, limit: Self.maximumPageCount)
        }
    }

    /// Explains an `EINVAL` about a page count: over the per-call limit (read now), or `other`.
    func limitOr(_ other: XenGntError.Code, count: Int) -> (XenGntError.Code, limit: Int?) {
        let limit = perCallLimit
        return count > limit ? (.tooManyPages, limit) : (other, nil)
    }

    /// Refuses a request naming this domain's own grants where mapping them corrupts the
    /// domain (x86 PVH/HVM); a no-op when this domain's id is unknown.
    @usableFromInline
    func refuseOwnGrants(_ domain: DomainID, for operation: XenGntError.Operation) throws(XenGntError) {
        if domain == system.domainID, guestType == .pvh || guestType == .hvm {
            throw XenGntError(.ownGrants, operation, domain: domain, guestType: guestType)
        }
    }

    /// Tells the kernel the most grants this file may map.
    ///
    /// Linux 5.5 removed the ioctl (the limit became per call); then it answers `ENOTTY`, which
    /// is harmless, and this returns `false`.
    ///
    /// - Returns: `true` when the kernel took the limit, `false` when it no longer has the ioctl.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_SET_MAX_GRANTS`.
    @discardableResult
    public func setMaxGrants(_ count: Int) throws(XenGntError) -> Bool {
        handle.retryParked()
        guard count > 0, count <= Int(UInt32.max) else {
            throw .invalid(.setMaxGrants, "the grant count must be between 1 and \(UInt32.max); it is \(count).")
        }
        var argument = ioctl_gntdev_set_max_grants(count: UInt32(count))
        do throws(Errno) {
            _ = try handle.ioctl(Request.setMaxGrants, &argument)
            return true
        } catch .inappropriateIOCTLForDevice {
            return false
        } catch {
            throw XenGntError(.kernel, .setMaxGrants, call: Call.setMaxGrants, errno: error)
        }
    }

    /// Finds the gntdev mapping that contains `address`: its offset in the device file and its
    /// page count.
    ///
    /// - Throws: ``XenGntError/Code/notFound`` when `address` is not inside a mapping made
    ///   through this device file.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR`.
    public func mappedRange(containing address: UnsafeRawPointer) throws(XenGntError) -> (offset: UInt64, pageCount: Int) {
        handle.retryParked()
        var argument = ioctl_gntdev_get_offset_for_vaddr()
        argument.vaddr = UInt64(UInt(bitPattern: address))
        do throws(Errno) {
            _ = try handle.ioctl(Request.getOffsetForVaddr, &argument)
        } catch {
            throw XenGntError(
                error == .invalidArgument ? .notFound : .kernel,
                .offsetForAddress,
                call: Call.getOffsetForVaddr,
                errno: error
            )
        }
        return (argument.offset, Int(argument.count))
    }
}

extension GuestType {
    /// The guest type of the domain behind `calls`, or `nil` when this is not (visibly) Xen.
    static func detect(_ calls: any SystemCalls) -> GuestType? {
        guard let type = try? calls.readSmallFile(Paths.hypervisorType),
            type.trimmingWhitespace() == "xen"
        else { return nil }
        let machine = calls.machine()
        if machine.hasPrefix("aarch64") || machine.hasPrefix("arm") { return .arm }
        guard let text = try? calls.readSmallFile(Paths.guestType) else { return nil }
        return GuestType(rawValue: text.trimmingWhitespace())
    }
}

extension DomainID {
    @usableFromInline
    func validate(for operation: XenGntError.Operation) throws(XenGntError) {
        if isReserved { throw XenGntError(.reservedDomain, operation, domain: self) }
    }
}
