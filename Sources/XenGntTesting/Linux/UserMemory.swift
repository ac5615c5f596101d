import SystemPackage
import XenGnt

/// `copy_from_user` and `copy_to_user` for ioctl arguments: an address the caller has not
/// mapped is `EFAULT`, never a crash of the simulator, whatever a count field claims.
enum UserMemory {
    /// `address`, once `bytes` bytes from it are known to be mapped.
    static func check(_ address: UnsafeMutableRawPointer?, bytes: Int) throws(Errno) -> UnsafeMutableRawPointer {
        guard let address, bytes >= 0, HostCalls.isAccessible(address, count: bytes) else { throw .badAddress }
        return address
    }

    /// The argument struct at `address` (`copy_from_user(&op, arg, sizeof(op))`).
    static func load<T>(_ type: T.Type, from address: UnsafeMutableRawPointer?) throws(Errno) -> T {
        try check(address, bytes: MemoryLayout<T>.size).loadUnaligned(as: T.self)
    }

    /// `count` elements of `T` at `offset` bytes past `address` (a flexible array member),
    /// checked as one range.
    static func array<T>(
        of type: T.Type,
        at address: UnsafeMutableRawPointer,
        offset: Int,
        count: Int
    ) throws(Errno) -> UserArray<T> {
        let (bytes, overflow) = MemoryLayout<T>.stride.multipliedReportingOverflow(by: count)
        if overflow { throw .badAddress }
        let (start, wrapped) = UInt(bitPattern: address).addingReportingOverflow(UInt(offset))
        if wrapped { throw .badAddress }
        return UserArray(base: try check(UnsafeMutableRawPointer(bitPattern: start), bytes: bytes), count: count)
    }

    /// Writes `value` at `offset` bytes past `address` (a field of an argument already loaded).
    static func store<T>(_ value: T, at address: UnsafeMutableRawPointer?, offset: Int) {
        address?.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    /// A NUL-terminated string of at most `limit` bytes (`strndup_user`): `nil` when there is no
    /// NUL within the limit; `EFAULT` when the bytes before it are not mapped.
    static func string(at address: UnsafeMutableRawPointer?, limit: Int) throws(Errno) -> String? {
        guard let address else { throw .badAddress }
        var length = 0
        var checkedUpTo = 0
        while length < limit {
            if length == checkedUpTo {
                // One page at a time: the string may end just before an unmapped page.
                let toPageEnd = xenPageSize - Int(UInt(bitPattern: address + length) % UInt(xenPageSize))
                _ = try check(address + length, bytes: 1)
                checkedUpTo = length + toPageEnd
            }
            if address.load(fromByteOffset: length, as: UInt8.self) == 0 {
                return String(decoding: UnsafeRawBufferPointer(start: address, count: length), as: UTF8.self)
            }
            length += 1
        }
        return nil
    }
}

/// Elements of a caller's array, read and written unaligned (a hostile argument may be
/// misaligned).
struct UserArray<Element> {
    let base: UnsafeMutableRawPointer
    let count: Int

    subscript(index: Int) -> Element {
        get { base.loadUnaligned(fromByteOffset: index * MemoryLayout<Element>.stride, as: Element.self) }
        nonmutating set { base.storeBytes(of: newValue, toByteOffset: index * MemoryLayout<Element>.stride, as: Element.self) }
    }

    func map<T>(_ transform: (Element) -> T) -> [T] {
        (0..<count).map { transform(self[$0]) }
    }
}
