internal import CXenGnt
import SystemPackage

/// A Xen grant-table status code (`GNTST_*`), as reported per grant-copy segment.
public struct GrantStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The `GNTST_*` value.
    public var rawValue: Int16
    /// The status `rawValue`.
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// `GNTST_okay`: done.
    public static let okay = GrantStatus(rawValue: 0)
    /// `GNTST_general_error`: also an unused or foreign grant entry, or a write to a read-only grant.
    public static let generalError = GrantStatus(rawValue: -1)
    /// `GNTST_bad_domain`: no such domain.
    public static let badDomain = GrantStatus(rawValue: -2)
    /// `GNTST_bad_gntref`: a reference past the end of the grant table.
    public static let badGrantRef = GrantStatus(rawValue: -3)
    /// `GNTST_bad_handle`.
    public static let badHandle = GrantStatus(rawValue: -4)
    /// `GNTST_bad_virt_addr`.
    public static let badVirtualAddress = GrantStatus(rawValue: -5)
    /// `GNTST_bad_dev_addr`.
    public static let badDeviceAddress = GrantStatus(rawValue: -6)
    /// `GNTST_no_device_space`.
    public static let noDeviceSpace = GrantStatus(rawValue: -7)
    /// `GNTST_permission_denied`.
    public static let permissionDenied = GrantStatus(rawValue: -8)
    /// `GNTST_bad_page`.
    public static let badPage = GrantStatus(rawValue: -9)
    /// `GNTST_bad_copy_arg`.
    public static let badCopyArgument = GrantStatus(rawValue: -10)
    /// `GNTST_address_too_big`.
    public static let addressTooBig = GrantStatus(rawValue: -11)
    /// `GNTST_eagain`.
    public static let tryAgain = GrantStatus(rawValue: -12)
    /// `GNTST_no_space`.
    public static let noSpace = GrantStatus(rawValue: -13)

    /// Whether the segment was copied.
    public var isOkay: Bool { rawValue == 0 }

    /// The `GNTST_*` name.
    public var description: String {
        switch rawValue {
        case 0: "GNTST_okay"
        case -1: "GNTST_general_error"
        case -2: "GNTST_bad_domain"
        case -3: "GNTST_bad_gntref"
        case -4: "GNTST_bad_handle"
        case -5: "GNTST_bad_virt_addr"
        case -6: "GNTST_bad_dev_addr"
        case -7: "GNTST_no_device_space"
        case -8: "GNTST_permission_denied"
        case -9: "GNTST_bad_page"
        case -10: "GNTST_bad_copy_arg"
        case -11: "GNTST_address_too_big"
        case -12: "GNTST_eagain"
        case -13: "GNTST_no_space"
        default: "GNTST \(rawValue)"
        }
    }
}

/// One piece of a grant copy: `length` bytes from `source` to `destination`, at least one of
/// which is a grant. A grant side may not cross its page.
public struct GrantCopySegment: @unchecked Sendable {
    /// One side of a copy.
    public enum Endpoint: @unchecked Sendable {
        /// Memory of this process.
        case local(UnsafeMutableRawPointer)
        /// A granted page, at a byte offset within it.
        case grant(ForeignGrant, offset: Int)
    }

    /// Where the bytes come from.
    public var source: Endpoint
    /// Where the bytes go.
    public var destination: Endpoint
    /// How many bytes, 0 to 4096.
    public var length: Int
    /// Set by ``GrantDevice/copy(_:)``: the first failure among the segment's operations, or
    /// ``GrantStatus/okay``.
    public var status: GrantStatus = .okay

    /// Copy `length` bytes from `source` to `destination`.
    public init(from source: Endpoint, to destination: Endpoint, length: Int) {
        self.source = source
        self.destination = destination
        self.length = length
    }
}

extension GrantDevice {
    /// Copies between local memory and granted pages through Xen, without mapping them. Each
    /// segment's ``GrantCopySegment/status`` is set; a bad grant fails only its segment.
    ///
    /// - Throws: before the kernel is asked, when a segment has no grant side, crosses a page
    ///   on a grant side, or names a reserved domain; ``XenGntError/Operation/grantCopy`` with
    ///   `EFAULT` when a local address is not mapped.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_GRANT_COPY`.
    public func copy(_ segments: inout [GrantCopySegment]) throws(XenGntError) {
        if segments.isEmpty { return }
        guard segments.count <= GrantDevice.maximumPageCount else {
            throw XenGntError(.tooManyPages, .grantCopy, count: segments.count, limit: GrantDevice.maximumPageCount)
        }
        handle.retryParked()
        let segmentSize = MemoryLayout<ioctl_gntdev_grant_copy_segment>.stride
        let header = MemoryLayout<ioctl_gntdev_grant_copy>.stride
        for segment in segments { try Self.validate(segment) }
        let count = segments.count
        try handle.withArgument(bytes: header + count * segmentSize) { raw throws(XenGntError) in
            let table = (raw + header).bindMemory(to: ioctl_gntdev_grant_copy_segment.self, capacity: count)
            for i in 0..<count {
                let segment = segments[i]
                var flags: UInt16 = 0
                switch segment.source {
                case .local(let address): table[i].source.virt = address
                case .grant(let grant, let offset):
                    flags |= UInt16(CXG_GNTCOPY_SOURCE_GREF)
                    table[i].source.foreign.ref = grant.ref.rawValue
                    table[i].source.foreign.offset = UInt16(offset)
                    table[i].source.foreign.domid = grant.domain.rawValue
                }
                switch segment.destination {
                case .local(let address): table[i].dest.virt = address
                case .grant(let grant, let offset):
                    flags |= UInt16(CXG_GNTCOPY_DEST_GREF)
                    table[i].dest.foreign.ref = grant.ref.rawValue
                    table[i].dest.foreign.offset = UInt16(offset)
                    table[i].dest.foreign.domid = grant.domain.rawValue
                }
                table[i].len = UInt16(segment.length)
                table[i].flags = flags
                table[i].status = 0
            }
            let argument = raw.bindMemory(to: ioctl_gntdev_grant_copy.self, capacity: 1)
            argument.pointee.count = UInt32(count)
            argument.pointee.segments = table
            do throws(Errno) {
                _ = try handle.ioctl(Request.grantCopy, raw)
            } catch {
                switch error {
                case .badAddress:
                    throw XenGntError(
                        .invalidArgument,
                        .grantCopy,
                        call: Call.grantCopy,
                        errno: error,
                        detail: "a local buffer of a segment is not memory this process may access."
                    )
                case .noMemory:
                    throw XenGntError(.outOfMemory, .grantCopy, call: Call.grantCopy, errno: error)
                default:
                    throw XenGntError(.kernel, .grantCopy, call: Call.grantCopy, errno: error)
                }
            }
            for i in 0..<count {
                segments[i].status = GrantStatus(rawValue: table[i].status)
            }
        }
    }

    private static func validate(_ segment: GrantCopySegment) throws(XenGntError) {
        guard segment.length >= 0, segment.length <= xenPageSize else {
            throw XenGntError.invalid(.grantCopy, "a grant copy segment is 0 to 4096 bytes long; this one is \(segment.length).")
        }
        let sourceIsGrant = try validate(segment.source, length: segment.length)
        let destinationIsGrant = try validate(segment.destination, length: segment.length)
        guard sourceIsGrant || destinationIsGrant else {
            throw XenGntError.invalid(
                .grantCopy,
                "a grant copy segment needs a grant on at least one side; the kernel does not copy local to local."
            )
        }
    }

    /// Validates one side; returns whether it is a grant.
    private static func validate(_ endpoint: GrantCopySegment.Endpoint, length: Int) throws(XenGntError) -> Bool {
        guard case .grant(let grant, let offset) = endpoint else { return false }
        try grant.domain.validate(for: .grantCopy)
        // Written so that no value of offset can overflow (length is 0...4096 here).
        guard offset >= 0, offset <= xenPageSize - length else {
            throw XenGntError(
                .outOfRange,
                .grantCopy,
                offset: offset,
                length: xenPageSize,
                detail: "a grant side of a copy cannot cross its page: offset \(offset) + length \(length) is over 4096."
            )
        }
        return true
    }
}
