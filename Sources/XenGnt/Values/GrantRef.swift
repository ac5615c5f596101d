/// A grant reference: the index of an entry in the granting domain's grant table.
///
/// Its memory layout is exactly the kernel's `uint32_t`, so a `[GrantRef]` is copied into an
/// ioctl argument with one `memcpy`.
public struct GrantRef: RawRepresentable, Hashable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// The reference as the kernel's `uint32_t`.
    public var rawValue: UInt32

    /// The reference `rawValue`.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The reference `rawValue`.
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// The reference `value`.
    public init(integerLiteral value: UInt32) { self.rawValue = value }

    /// `gref 8`.
    public var description: String { "gref \(rawValue)" }
}

/// One page granted by a given domain: what `IOCTL_GNTDEV_MAP_GRANT_REF` takes per page.
public struct ForeignGrant: Hashable, Sendable {
    /// The domain that granted the page.
    public var domain: DomainID
    /// The grant reference in that domain's grant table.
    public var ref: GrantRef

    /// Page `ref` of `domain`'s grant table.
    public init(domain: DomainID, ref: GrantRef) {
        self.domain = domain
        self.ref = ref
    }
}

/// Whether a mapping or a grant allows writing.
public enum Access: Sendable, Hashable {
    /// Read only.
    case readOnly
    /// Read and write.
    case readWrite
}

/// The size of a Xen page and of a Linux page on the platforms XenGnt supports (x86_64, arm64
/// with 4 KiB pages): every grant covers one page.
public let xenPageSize = 4096
