/// Zeroed memory for `count` elements of `T`, whose address an ioctl argument carries as a
/// `__u64 *_ptr` field (the pattern of every DRM call that returns a list: ask for the count
/// with a null pointer, then call again with room for that many).
final class KernelArray<T> {
    let buffer: UnsafeMutableBufferPointer<T>

    init(count: Int) {
        buffer = .allocate(capacity: max(count, 1))
        UnsafeMutableRawBufferPointer(buffer).initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { buffer.deallocate() }

    /// The address for the argument's `*_ptr` field.
    var address: UInt64 { UInt64(UInt(bitPattern: buffer.baseAddress)) }

    /// The first `count` elements (bounded by the room there is).
    func prefix(_ count: some BinaryInteger) -> [T] { Array(buffer.prefix(Int(count))) }
}
