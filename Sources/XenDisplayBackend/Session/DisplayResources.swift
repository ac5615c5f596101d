/// What a ``DisplaySession`` needs from the world for one frontend device: the buffers, the
/// framebuffers and the screens. The session decides what is allowed (cookies, order, sizes);
/// the resources own what the kernel gives (mappings, exports, dumb buffers, KMS objects),
/// keyed by the frontend's cookies, and release it when told.
///
/// Every method either does all of its work or throws a refusal and keeps nothing.
public protocol DisplayResources {
    /// Reads directory page `ref` of the frontend (mapped read-only, copied once, unmapped).
    mutating func readDirectoryPage(_ ref: UInt32) throws(DisplayRefusal) -> [UInt8]
    /// Writes `refs` into the `gref[]` slots of the frontend's directory page `ref` (mapped
    /// writable) and returns its `gref_dir_next_page`, read once.
    mutating func writeDirectoryPage(_ ref: UInt32, refs: ArraySlice<UInt32>) throws(DisplayRefusal) -> UInt32

    /// `be-alloc=0`: takes the frontend's pages `refs` as buffer `cookie` (export, or map for
    /// copying).
    mutating func attachFrontendBuffer(_ cookie: UInt64, refs: [UInt32], layout: DisplayBufferLayout) throws(DisplayRefusal)
    /// `be-alloc=1`: allocates buffer `cookie` with exactly `layout` and grants it to the
    /// frontend; returns the refs, one per page.
    mutating func allocateBackendBuffer(_ cookie: UInt64, layout: DisplayBufferLayout) throws(DisplayRefusal) -> [UInt32]
    /// Releases buffer `cookie` (no framebuffer uses it any more).
    mutating func releaseBuffer(_ cookie: UInt64)

    /// Makes framebuffer `cookie` of `format` and `width`×`height` over buffer `buffer`.
    mutating func attachFramebuffer(
        _ cookie: UInt64,
        buffer: UInt64,
        width: Int,
        height: Int,
        format: DisplayPixelFormat
    ) throws(DisplayRefusal)
    /// Releases framebuffer `cookie`; if a connector shows it, that connector goes blank.
    mutating func releaseFramebuffer(_ cookie: UInt64)

    /// Sets `connector`'s mode and shows framebuffer `framebuffer` (nil: turns it off).
    mutating func configure(connector: Int, framebuffer: UInt64?, width: Int, height: Int) throws(DisplayRefusal)
    /// Starts showing `framebuffer` on `connector`. Returns `true` when it is on screen
    /// already (the session posts the flip event at once), `false` when the resources will
    /// report it later through ``DisplaySession/flipCompleted(connector:)``.
    mutating func flip(connector: Int, framebuffer: UInt64) throws(DisplayRefusal) -> Bool

    /// Writes `bytes` at the start of the buffer whose pages are `refs` (GET_EDID).
    mutating func writeFrontendPages(_ refs: [UInt32], bytes: [UInt8]) throws(DisplayRefusal)
}
