internal import CDRM
import SystemPackage
public import XenGnt

/// A DRM device node (`/dev/dri/card0`, `/dev/dri/renderD128`), opened through XenGnt's seam so
/// that a simulated Xen sees every call.
///
/// A device is a shared handle, usable from many tasks. What it hands out — ``GEMHandle``,
/// ``DumbBuffer``, ``Framebuffer``, ``Scanout`` and the two backend flows
/// (``FrontendFramebuffer``, ``SharedDisplayBuffer``) — are `~Copyable` owners that keep the
/// device open and release their kernel object when they go away.
///
/// ```swift
/// let display = try DRMDevice(driver: "vkms")           // the primary node, on: .kernel
/// let frame = try FrontendFramebuffer(gntdev.exportDmaBuf(refs: refs, from: frontend),
///                                     on: display, layout: .init(width: 1920, height: 1080, pitch: 7680))
/// ```
///
/// XenGntDRM issues every DRM ioctl itself; it uses libdrm only for its headers and for the
/// names of formats and modifiers, so it needs no libdrm at run time for device calls.
public final class DRMDevice: Sendable {
    let file: DRMFile

    /// Where the device was opened (the kernel, or a simulated domain).
    public let system: XenSystem
    /// The node's path.
    public var path: String { file.path }
    /// The node's kind: a primary node (`cardN`) or a render node (`renderDN`).
    public let node: DRMNodeKind
    /// The driver's name and version (`DRM_IOCTL_VERSION`).
    public let driver: DRMVersion

    /// Opens the DRM node at `path`.
    ///
    /// - Throws: `XenGntError.Code.deviceMissing` when the node does not exist,
    ///   `XenGntError.Code.permissionDenied` when it may not be opened.
    ///
    /// The corresponding C function is `open`, followed by the ioctl `DRM_IOCTL_VERSION`.
    public init(path: String, on system: XenSystem = .kernel) throws(XenGntError) {
        self.system = system
        file = try DRMFile(path: path, calls: system.calls)
        do throws(Errno) {
            node = try DRMNode.kind(of: file.fd, path: path, calls: system.calls)
        } catch {
            node = DRMNode.kind(ofName: path)
        }
        driver = try DRMVersion.read(file)
    }

    /// Opens the first node (in name order) of the driver called `driver` (`vkms`, `vgem`,
    /// `xendrm-du`) of the given kind.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/drmDeviceNotFound`` naming what was found instead.
    public convenience init(
        driver name: String,
        node kind: DRMNodeKind = .primary,
        on system: XenSystem = .kernel
    ) throws(XenGntError) {
        let nodes = try Self.list(on: system)
        guard let match = nodes.first(where: { $0.driver.name == name && $0.node == kind }) else {
            let found = nodes.isEmpty ? "no DRM nodes" : nodes.map { "\($0.path): \($0.driver.name)" }.joined(separator: ", ")
            throw XenGntError(
                .drmDeviceNotFound,
                .findDRMDevice,
                path: DRMPaths.directory,
                detail: "asked for the \(kind) node of '\(name)'; found \(found)"
            )
        }
        try self.init(path: match.path, on: system)
    }

    /// The DRM nodes of `system`: each `cardN` and `renderDN` of /dev/dri with its driver, in
    /// name order. A node that cannot be opened is left out.
    ///
    /// The corresponding C functions are `opendir`/`readdir`, `open` and the ioctl
    /// `DRM_IOCTL_VERSION` for each node.
    public static func list(on system: XenSystem = .kernel) throws(XenGntError) -> [DRMNodeInfo] {
        let names: [String]
        do throws(Errno) {
            names = try system.calls.listDirectory(DRMPaths.directory)
        } catch .noSuchFileOrDirectory {
            return []
        } catch {
            throw XenGntError(.kernel, .findDRMDevice, call: "opendir", errno: error, path: DRMPaths.directory)
        }
        return names.filter(DRMNode.isNode).sorted(by: DRMNodeInfo.nameOrder).compactMap { name in
            let path = DRMPaths.directory + "/" + name
            guard let device = try? DRMDevice(path: path, on: system) else { return nil }
            return DRMNodeInfo(path: path, node: device.node, driver: device.driver)
        }
    }
}

/// A DRM node found by ``DRMDevice/list(on:)``.
public struct DRMNodeInfo: Sendable, Hashable, CustomStringConvertible {
    /// `/dev/dri/card0`.
    public let path: String
    /// Primary or render.
    public let node: DRMNodeKind
    /// The driver behind it.
    public let driver: DRMVersion

    public var description: String { "\(path) (\(driver.name), \(node))" }

    /// `card2` before `card10`; primary nodes before render nodes.
    static func nameOrder(_ a: String, _ b: String) -> Bool {
        func key(_ name: String) -> (Int, Int) {
            let render = name.hasPrefix("renderD")
            return (render ? 1 : 0, Int(name.drop { !$0.isNumber }) ?? 0)
        }
        return key(a) < key(b)
    }
}
