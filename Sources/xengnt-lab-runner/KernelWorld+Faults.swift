import XenGnt
import XenGntConformance

#if canImport(Glibc)
import Glibc
#endif

/// The fault cases' world on a real Xen: holders are this runner started again, and Dom0's
/// runner is the toolstack (it runs `xl`, which the Dom0 initramfs has).
extension KernelWorld {
    func spawnHolder(_ holdings: [Holding], as role: LabRole) async throws -> any HolderProcess {
        try KernelHolder.spawn(holdings)
    }

    func destroyDomain(_ victim: LabRole, as actor: LabRole) async throws {
        try requireToolstack(actor)
        _ = try command(["xl", "destroy", String(domainID(of: victim).rawValue)])
    }

    func domainState(of role: LabRole, as actor: LabRole) async throws -> DomainState {
        try requireToolstack(actor)
        return Self.state(of: domainID(of: role), in: try command(["xl", "list"]))
    }

    /// Clears Xen's console ring, asks for the grant table dump (debug key `g`, handled
    /// synchronously in the hypercall) and reads the ring back.
    func grantDump(as actor: LabRole) async throws -> GrantDump {
        try requireToolstack(actor)
        _ = try command(["xl", "dmesg", "-c"])
        _ = try command(["xl", "debug-keys", "g"])
        return try Self.parseGrantDump(try command(["xl", "dmesg", "-c"]))
    }

    /// /proc/self/fd (but the runtime's timers) and the file-backed lines of /proc/self/maps.
    func footprint(as role: LabRole) async throws -> ProcessFootprint {
        var descriptors: [String] = []
        guard let directory = opendir("/proc/self/fd") else { throw RunnerError("opendir /proc/self/fd: errno \(errno)") }
        let own = dirfd(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let number = Int32(name), number != own else { continue }
            var target = [CChar](repeating: 0, count: 4096)
            let length = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
            let what = length > 0 ? String(decoding: target[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
            // The concurrency runtime opens a timerfd per clock and leeway class the first time
            // a task sleeps that way; XenGnt opens none.
            if what == "anon_inode:[timerfd]" { continue }
            descriptors.append("\(number) \(what)")
        }
        closedir(directory)
        let maps = try Self.readFile("/proc/self/maps")
        let mappings = maps.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6 else { return nil }
            let path = fields[5].trimmingPrefix(while: { $0 == " " })
            return path.hasPrefix("/") ? "\(fields[0]) \(fields[1]) \(path)" : nil
        }
        return ProcessFootprint(descriptors: descriptors, mappings: mappings)
    }

    func note(_ line: String, in caseName: String, as role: LabRole) {
        print("INFO \(caseName) \(role) \(line)")
        fflush(nil)
    }

    private func requireToolstack(_ actor: LabRole) throws {
        guard actor == .dom0, role == .dom0 else { throw ConformanceFailure("only Dom0 runs the toolstack") }
    }

    // MARK: parsing

    /// `xl list`: a domain with the `d` flag in its state is dying; an id not listed is gone.
    static func state(of domain: DomainID, in listing: String) -> DomainState {
        for line in listing.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 6, UInt16(fields[fields.count - 5]) == domain.rawValue else { continue }
            return fields[fields.count - 2].contains("d") ? .dying : .running
        }
        return .gone
    }

    /// Xen 4.17's `gnttab_usage_print_all`: per domain `grant-table for remote d<N> (v1)`, then
    /// one line per active entry, `[0x<ref>]  <mapping domain> 0x<mfn> 0x<pin>  <grantee> 0x<frame> 0x<flags>`.
    static func parseGrantDump(_ text: String) throws -> GrantDump {
        let lines = text.split(separator: "\n")
        guard let start = lines.firstIndex(where: { $0.contains("gnttab_usage_print_all [") }),
            let end = lines.lastIndex(where: { $0.contains("gnttab_usage_print_all ]") }), start < end
        else {
            throw ConformanceFailure("the grant dump is incomplete (console ring too small?): \(text.suffix(300))")
        }
        var granter: DomainID?
        var refs: [GrantDump.Link: Set<UInt32>] = [:]
        var tables = Set<DomainID>()
        for line in lines[start...end] {
            if let range = line.firstRange(of: "grant-table for remote d") {
                granter = UInt16(line[range.upperBound...].prefix { $0.isNumber }).map { DomainID($0) }
                if let granter { tables.insert(granter) }
                continue
            }
            guard let open = line.firstRange(of: "[0x"), let close = line[open.upperBound...].firstIndex(of: "]"),
                let ref = UInt32(line[open.upperBound..<close], radix: 16), let granter
            else { continue }
            let fields = line[line.index(after: close)...].split(separator: " ")
            guard fields.count >= 6, let mapper = UInt16(fields[0]), let pin = UInt32(fields[2].dropFirst(2), radix: 16) else {
                throw ConformanceFailure("unexpected grant dump line: \(line)")
            }
            // Refs below 8 are reserved: the console and xenstore rings the toolstack maps.
            if pin != 0 && ref >= 8 {
                refs[GrantDump.Link(granter: granter, mapper: DomainID(mapper)), default: []].insert(ref)
            }
        }
        return GrantDump(active: refs.mapValues(\.count), tables: tables)
    }

    static func readFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RunnerError("open \(path): errno \(errno)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
