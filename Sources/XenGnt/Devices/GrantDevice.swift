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

    /// The most pages one request may name: gntdev's `limit` module parameter when readable,
    /// else the kernel's default, 65536.
    public let perCallLimit: Int

    /// Opens `/dev/xen/gntdev`.
    ///
    /// - Throws: ``XenGntError`` with ``XenGntError/Cause/deviceMissing(path:)`` when the device
    ///   does not exist (not a Xen domain, or no gntdev driver), or
    ///   ``XenGntError/Cause/permissionDenied(path:)``.
    ///
    /// The corresponding C function is `open`.
    public init(on system: XenSystem = .kernel) throws(XenGntError) {
        self.system = system
        self.handle = try DeviceHandle(path: Paths.gntdev, calls: system.calls)
        self.guestType = GuestType.detect(system.calls)
        self.perCallLimit = handle.readInteger(Paths.gntdevLimit) ?? defaultGntdevLimit
    }

    /// Checks a page count against the per-call limit, before the kernel answers a bare `EINVAL`.
    @usableFromInline
    func validate(count: Int, for operation: XenGntError.Operation) throws(XenGntError) {
        if count <= 0 { throw XenGntError(operation, cause: .emptyRequest) }
        if count > perCallLimit {
            throw XenGntError(operation, cause: .tooManyPages(count: count, limit: perCallLimit))
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
        guard count > 0, count <= Int(UInt32.max) else {
            throw XenGntError(.setMaxGrants, cause: .invalidArgument("the grant count must be between 1 and \(UInt32.max)."))
        }
        var argument = ioctl_gntdev_set_max_grants(count: UInt32(count))
        do throws(Errno) {
            _ = try handle.ioctl(Request.setMaxGrants, &argument)
            return true
        } catch .inappropriateIOCTLForDevice {
            return false
        } catch {
            throw XenGntError(.setMaxGrants, errno: error, cause: .kernel)
        }
    }

    /// Finds the gntdev mapping that contains `address`: its offset in the device file and its
    /// page count.
    ///
    /// - Throws: ``XenGntError/Cause/notFound`` when `address` is not inside a mapping made
    ///   through this device file.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR`.
    public func mappedRange(containing address: UnsafeRawPointer) throws(XenGntError) -> (offset: UInt64, pageCount: Int) {
        var argument = ioctl_gntdev_get_offset_for_vaddr()
        argument.vaddr = UInt64(UInt(bitPattern: address))
        do throws(Errno) {
            _ = try handle.ioctl(Request.getOffsetForVaddr, &argument)
        } catch .invalidArgument {
            throw XenGntError(.offsetForAddress, errno: .invalidArgument, cause: .notFound)
        } catch {
            throw XenGntError(.offsetForAddress, errno: error, cause: .kernel)
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
        if isReserved { throw XenGntError(operation, cause: .reservedDomain(rawValue)) }
    }
}
