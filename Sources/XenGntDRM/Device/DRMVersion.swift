internal import CDRM
import SystemPackage
import XenGnt

/// A DRM driver's name and version, from `DRM_IOCTL_VERSION`.
public struct DRMVersion: Sendable, Hashable, CustomStringConvertible {
    /// The driver's name: `vkms`, `vgem`, `xendrm-du`, `i915`.
    public let name: String
    /// The driver's version.
    public let major: Int, minor: Int, patchLevel: Int
    /// The driver's date string (often `0`).
    public let date: String
    /// The driver's description.
    public let summary: String

    public var description: String { "\(name) \(major).\(minor).\(patchLevel)" }

    /// Asks the driver behind `file`: once for the string lengths, once to fill them.
    static func read(_ file: DRMFile) throws(XenGntError) -> DRMVersion {
        var sizes = drm_version()
        try file.ioctl(DRMRequest.version, &sizes, .drmVersion)
        // Bounded, whatever the driver claims: names and dates are short.
        let nameLength = min(Int(sizes.name_len), 256)
        let dateLength = min(Int(sizes.date_len), 256)
        let descriptionLength = min(Int(sizes.desc_len), 4096)
        var name = [CChar](repeating: 0, count: nameLength + 1)
        var date = [CChar](repeating: 0, count: dateLength + 1)
        var text = [CChar](repeating: 0, count: descriptionLength + 1)
        var version = drm_version()
        try name.withUnsafeMutableBufferPointer { (name) throws(XenGntError) in
            try date.withUnsafeMutableBufferPointer { (date) throws(XenGntError) in
                try text.withUnsafeMutableBufferPointer { (text) throws(XenGntError) in
                    version.name_len = UInt(nameLength)
                    version.name = name.baseAddress
                    version.date_len = UInt(dateLength)
                    version.date = date.baseAddress
                    version.desc_len = UInt(descriptionLength)
                    version.desc = text.baseAddress
                    try file.ioctl(DRMRequest.version, &version, .drmVersion)
                }
            }
        }
        func string(_ chars: [CChar], _ length: Int) -> String {
            String(
                decoding: chars.prefix(min(length, chars.count - 1)).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                as: UTF8.self
            )
        }
        return DRMVersion(
            name: string(name, Int(version.name_len)),
            major: Int(version.version_major),
            minor: Int(version.version_minor),
            patchLevel: Int(version.version_patchlevel),
            date: string(date, Int(version.date_len)),
            summary: string(text, Int(version.desc_len))
        )
    }
}

/// The kind of a DRM device node.
public enum DRMNodeKind: String, Sendable, Hashable, CaseIterable {
    /// `/dev/dri/cardN`: everything the driver offers; mode setting needs DRM master.
    case primary
    /// `/dev/dri/renderDN`: rendering and PRIME only; no KMS, no dumb buffers.
    case render
}

enum DRMNode {
    /// The kind of the node open as `fd`, from its device number (DRM major 226; primary minors
    /// 0–63, render minors 128–191), or from its name when it is not a DRM character device.
    static func kind(of fd: Int32, path: String, calls: any SystemCalls) throws(Errno) -> DRMNodeKind {
        let info = try calls.fstat(fd)
        let device = UInt64(info.st_rdev)
        let major = UInt32((device >> 8) & 0xFFF | (device >> 32) & ~0xFFF)
        let minor = UInt32((device & 0xFF) | ((device >> 12) & ~0xFF))
        if info.st_mode & 0o170000 == 0o020000, major == DRMPaths.major {
            return minor >= 128 && minor < 192 ? .render : .primary
        }
        return kind(ofName: path)
    }

    /// `renderD128` is a render node, `card0` a primary one.
    static func kind(ofName path: String) -> DRMNodeKind {
        path.split(separator: "/").last?.hasPrefix("renderD") == true ? .render : .primary
    }

    /// Whether a name in /dev/dri is a device node (`card0`, `renderD128`).
    static func isNode(_ name: String) -> Bool {
        (name.hasPrefix("card") && name.dropFirst(4).allSatisfy(\.isNumber) && name.count > 4)
            || (name.hasPrefix("renderD") && name.dropFirst(7).allSatisfy(\.isNumber) && name.count > 7)
    }
}
