import SystemPackage
import Testing
import XenGnt
import XenGntTesting

@testable import XenGntDRM

/// A host whose domains have the lab's vgem and vkms and the simulated DMA-scanout display.
func displayHost(_ configure: (inout SimulatedKernel) -> Void = { _ in }) throws -> Host {
    try Host { kernel in
        kernel.devices.insert(.dmaScanout)
        configure(&kernel)
    }
}

/// A small mode: the simulated displays compose every pixel.
let smallMode = DisplayMode(width: 32, height: 24)

/// The picture of `seed`, XRGB8888 with X = 0, row by row.
func picture(seed: UInt8, width: Int = smallMode.width, height: Int = smallMode.height) -> [UInt32] {
    (0..<height).flatMap { y in
        (0..<width).map { x in
            UInt32(truncatingIfNeeded: (x &* 8 &+ Int(seed) &* 50) & 0xFF) << 16
                | UInt32(truncatingIfNeeded: (y &* 9 &+ Int(seed) &* 20) & 0xFF) << 8
                | UInt32(truncatingIfNeeded: (x ^ y ^ Int(seed) &* 11) & 0xFF)
        }
    }
}

/// The bytes of `pixels`, rows `pitch` apart.
func bytes(of pixels: [UInt32], width: Int = smallMode.width, pitch: Int) -> [UInt8] {
    let height = pixels.count / width
    var bytes = [UInt8](repeating: 0, count: height * pitch)
    for (i, pixel) in pixels.enumerated() {
        let at = (i / width) * pitch + (i % width) * 4
        for b in 0..<4 { bytes[at + b] = UInt8(truncatingIfNeeded: pixel >> (8 * b)) }
    }
    return bytes
}

/// Fills a dumb buffer with the picture of `seed`.
func draw(_ buffer: borrowing DumbBuffer, seed: UInt8) throws {
    let mapping = try buffer.map()
    let data = bytes(
        of: picture(seed: seed, width: buffer.width, height: buffer.height),
        width: buffer.width,
        pitch: buffer.pitch
    )
    mapping.withUnsafeMutableBytes { $0.copyBytes(from: data) }
    try mapping.unmap()
}

/// Writes the picture of `seed` into a frontend's granted pages (as its driver would).
func draw(_ refs: [GrantRef], of domain: SimulatedDomain, seed: UInt8, pitch: Int = smallMode.width * 4) throws {
    let data = bytes(of: picture(seed: seed), pitch: pitch)
    for (i, ref) in refs.enumerated() where i * 4096 < data.count {
        try domain.write(Array(data[(i * 4096)..<min(data.count, (i + 1) * 4096)]), toGrant: ref)
    }
}

/// The pages of one small-mode XR24 frame.
var framePages: Int { (smallMode.width * 4 * smallMode.height + 4095) / 4096 }

/// The DRM ioctls among `calls` (SeamRecorder names them `ioctl N`), by their uapi names, with
/// the other calls kept as they are.
func named(_ calls: [String]) -> [String] {
    calls.map { call in
        guard call.hasPrefix("ioctl "), let number = UInt(call.dropFirst(6)), let name = DRMRequest.name(of: number) else {
            return call
        }
        return name
    }
}

/// Runs `body`, which must throw a `XenGntError` with `code` (and `errno`, when given:
/// `.some(nil)` for a refusal before the kernel was asked); returns it.
@discardableResult
func expectDRMError(
    _ code: XenGntError.Code,
    errno: Errno?? = .none,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> XenGntError? {
    do {
        try body()
        Issue.record("expected \(code), but it succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as XenGntError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        if case .some(let expected) = errno { #expect(error.errno == expected, "\(error)", sourceLocation: sourceLocation) }
        return error
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

extension SeamRecorder {
    /// The calls since `mark` (a ``count`` taken before).
    func since(_ mark: Int) -> [String] { Array(calls[mark...]) }
}
