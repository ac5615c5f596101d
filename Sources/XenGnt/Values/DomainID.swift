/// A Xen domain id (`domid_t`).
///
/// Ids from `0x7FF0` up are reserved by Xen (`DOMID_FIRST_RESERVED`: `DOMID_SELF`, `DOMID_IO`,
/// ...). Any value can be written, but every XenGnt operation rejects a reserved id with
/// ``XenGntError/Code/reservedDomain`` before the kernel sees it, because the kernel answers
/// it with a bare `EINVAL` (or, for an import, not at all).
public struct DomainID: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// The id as Xen's `domid_t`.
    public var rawValue: UInt16

    /// The id `rawValue`.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The id `rawValue`.
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    /// The id `value`, as in `let frontend: DomainID = 3`.
    public init(integerLiteral value: UInt16) { self.rawValue = value }

    /// The first reserved id, `DOMID_FIRST_RESERVED` (0x7FF0).
    public static let firstReserved: UInt16 = 0x7FF0

    /// Dom0, the control domain.
    public static let dom0 = DomainID(0)

    /// Whether Xen reserves this id (so no guest can have it).
    public var isReserved: Bool { rawValue >= Self.firstReserved }

    public static func < (a: DomainID, b: DomainID) -> Bool { a.rawValue < b.rawValue }

    /// `dom3`.
    public var description: String { "dom\(rawValue)" }
}
