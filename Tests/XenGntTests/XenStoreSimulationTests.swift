import CXenBackend
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

@testable import XenGntBackend

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a XenStore connection of `system`, closed on every path out.
func withStore<R>(
    _ system: XenSystem,
    transport: XenStore.Transport? = nil,
    _ body: (XenStore) async throws -> R
) async throws -> R {
    let store = try XenStore(on: system, transport: transport)
    do {
        let result = try await body(store)
        await store.close()
        return result
    } catch {
        await store.close()
        throw error
    }
}

/// The error `body` throws, which must be a `XenGntError`.
func failure(_ body: () async throws -> Void) async -> XenGntError? {
    do {
        try await body()
        return nil
    } catch {
        return error as? XenGntError
    }
}

extension Simulated {
    /// The XenStore client against the simulated xenstored: what the lab showed of C xenstored,
    /// and what the lab cannot show (the default node quota, a dropped socket, the kernel
    /// device's framing).
    @Suite(.noDescriptorLeaks) struct XenStoreOnTheSimulator {
        @Test func eachDomainHasTheHomeTheToolstackWrites() async throws {
            let host = try Host()
            try await withStore(host.dom0.system) { dom0 in
                #expect(dom0.transport == .daemonSocket)
                #expect(try await dom0.domainID() == .dom0)
                #expect(try await dom0.read("/local/domain/0/name") == "Domain-0")
                let one = try await dom0.isDomainIntroduced(1)
                let nine = try await dom0.isDomainIntroduced(9)
                #expect(one && !nine)
            }
            try await withStore(host.frontend.system) { domU in
                #expect(domU.transport == .kernelDevice)
                #expect(try await domU.domainID() == host.frontend.id)
                #expect(
                    try await domU.permissions(of: "/local/domain/1") == [
                        XenStorePermission(.dom0, .none), XenStorePermission(1, .read),
                    ]
                )
                #expect(try await domU.permissions(of: "data") == [XenStorePermission(1, .none)])
                try await domU.write("data/mine", "1")
                #expect(await failure { try await domU.write("owned-by-dom0", "x") }?.code == .accessDenied)
                #expect(await failure { _ = try await domU.read("/local/domain/2/data/x") }?.code == .accessDenied)
                #expect(await failure { _ = try await domU.isDomainIntroduced(2) }?.code == .accessDenied)
                #expect(try await domU.directory("data") == ["mine"])
                try await domU.makeDirectory("data/empty")
                #expect(try await domU.directory("data/empty") == [])
                #expect(try await domU.domainPath(of: 7) == "/local/domain/7")
            }
        }

        @Test func theDefaultNodeQuotaIsAThousandNodesPerDomain() async throws {
            let host = try Host()
            host.xen.xenstoreQuotas.nodes = 30
            try await withStore(host.frontend.system) { domU in
                var created = 0
                var refusal: XenGntError?
                while created < 100 {
                    do throws(XenGntError) {
                        try await domU.write("data/n\(created)", "")
                        created += 1
                    } catch {
                        refusal = error
                        break
                    }
                }
                // The toolstack gave the domain 11 nodes of its own (data, drivers, control/...).
                #expect(created == 19 && refusal?.code == .quotaExceeded && refusal?.detail == "ENOSPC")
                try await domU.remove("data/n0")
                try await domU.write("data/again", "")
                // Dom0 is not limited, even when it writes into the domain's home.
                try await withStore(host.dom0.system) { dom0 in try await dom0.write("/local/domain/1/data/dom0s", "") }
            }
        }

        @Test func theKernelDeviceFramesAsLinuxDoes() async throws {
            let host = try Host()
            let calls = host.frontend.system.calls
            let fd = try calls.open("/dev/xen/xenbus", flags: O_RDWR | O_CLOEXEC | O_NONBLOCK, mode: 0)
            defer { try? calls.close(fd) }
            func write(_ bytes: [UInt8]) -> Errno? {
                let result = bytes.withUnsafeBytes { raw in Result { () throws(Errno) in try calls.write(fd, from: raw) } }
                if case .failure(let error) = result { return error }
                return nil
            }
            func read() -> [XenStoreMessage] {
                var parser = XenStoreMessageParser()
                var buffer = [UInt8](repeating: 0, count: 8192)
                let count = (try? buffer.withUnsafeMutableBytes { raw in try calls.read(fd, into: raw) }) ?? 0
                return (try? buffer[..<count].withUnsafeBytes { try parser.feed($0) }) ?? []
            }
            // A header announcing more than the buffer holds: E2BIG; a write overflowing it: EINVAL.
            var oversized = XenStoreMessage(type: XenStoreMessageType.read, requestID: 1, payload: []).bytes
            oversized.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(4081), toByteOffset: 12, as: UInt32.self) }
            #expect(write(oversized) == .argListTooLong)
            #expect(write([UInt8](repeating: 0, count: 4097)) == .invalidArgument)
            // One message per write: a second one in the same write is dropped.
            let two =
                XenStoreMessage(type: XenStoreMessageType.read, requestID: 7, payload: XenStoreMessage.payload(["domid"])).bytes
                + XenStoreMessage(type: XenStoreMessageType.read, requestID: 8, payload: XenStoreMessage.payload(["domid"])).bytes
            #expect(write(two) == nil)
            let replies = read()
            #expect(replies.map(\.requestID) == [7] && replies.first?.text == "1")
            // A watch: the kernel registers it, so its first event comes before the OK and has
            // no request id; the same path and token twice is no error through the kernel.
            let watch = XenStoreMessage(
                type: XenStoreMessageType.watch,
                requestID: 9,
                payload: XenStoreMessage.payload(["data", "t"])
            ).bytes
            #expect(write(watch) == nil && write(watch) == nil)
            let answers = read()
            #expect(
                answers.map(\.type) == [
                    XenStoreMessageType.watchEvent, XenStoreMessageType.watch, XenStoreMessageType.watchEvent,
                    XenStoreMessageType.watch,
                ]
            )
            #expect(answers[0].requestID != 9 && answers[1].requestID == 9)
            // A refused watch fails the write itself.
            let bad = XenStoreMessage(
                type: XenStoreMessageType.watch,
                requestID: 10,
                payload: XenStoreMessage.payload(["bad.path", "t"])
            ).bytes
            #expect(write(bad) == .invalidArgument)
        }

        @Test func aSocketClientSendingAnOversizedMessageIsDropped() async throws {
            let host = try Host()
            let calls = host.dom0.system.calls
            let fd = try calls.connectUnixSocket("/var/run/xenstored/socket")
            defer { try? calls.close(fd) }
            var header = XenStoreMessage(type: XenStoreMessageType.read, requestID: 1, payload: []).bytes
            header.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(5000), toByteOffset: 12, as: UInt32.self) }
            _ = try header.withUnsafeBytes { try calls.write(fd, from: $0) }
            var buffer = [UInt8](repeating: 0, count: 16)
            #expect(try buffer.withUnsafeMutableBytes { try calls.read(fd, into: $0) } == 0)
            #expect(throws: Errno.brokenPipe) { _ = try header.withUnsafeBytes { try calls.write(fd, from: $0) } }
            // Through the socket the same path and token twice is EEXIST.
            try await withStore(host.dom0.system) { dom0 in
                let watch = try await dom0.watch("/local/domain/0")
                let token = watch.token
                let second = await failure {
                    _ = try await dom0.send(
                        XenStoreMessageType.watch,
                        payload: XenStoreMessage.payload(["/local/domain/0", token])
                    )
                }
                #expect(second?.code == .watchExists && second?.detail == "EEXIST")
                try await watch.cancel()
            }
        }

        @Test func releaseDomainFiresWhenADomainIsDestroyed() async throws {
            let host = try Host()
            try await withStore(host.dom0.system) { dom0 in
                let release = try await dom0.watch("@releaseDomain")
                var events = release.makeAsyncIterator()
                #expect(try await events.next()?.path == "@releaseDomain")
                // The DomU may watch it, but only Dom0 may read the special node by default.
                try await withStore(host.backend.system) { domU in
                    let theirs = try await domU.watch("@releaseDomain")
                    var theirEvents = theirs.makeAsyncIterator()
                    #expect(try await theirEvents.next()?.path == "@releaseDomain")
                    let home = try await dom0.watch("/local/domain/1")
                    var homeEvents = home.makeAsyncIterator()
                    _ = try await homeEvents.next()
                    host.xen.destroyDomain(host.frontend.id)
                    #expect(try await events.next()?.path == "@releaseDomain")
                    #expect(try await !dom0.isDomainIntroduced(host.frontend.id))
                    #expect(!(try await dom0.exists("/local/domain/1")))
                    #expect(try await homeEvents.next() != nil, "the toolstack removed the home")
                    try await home.cancel()
                    try await theirs.cancel()
                    #expect(try await theirEvents.next() == nil)
                }
                try await release.cancel()
            }
        }

        @Test func transactionsSeeTheirOwnWritesAndConflictOnAnyNodeTheyTouched() async throws {
            let host = try Host()
            try await withStore(host.dom0.system) { store in
                try await withStore(host.dom0.system) { other in
                    try await store.write("/t/a", "1")
                    let watch = try await other.watch("/t")
                    var events = watch.makeAsyncIterator()
                    _ = try await events.next()
                    // A node created meanwhile (absent when read) conflicts too.
                    let conflict = await failure {
                        try await store.transaction(attempts: 1) { transaction throws(XenGntError) in
                            _ = try await transaction.readIfPresent("/t/new")
                            try await other.write("/t/new", "theirs")
                            try await transaction.write("/t/a", "2")
                        }
                    }
                    #expect(conflict?.code == .transactionConflict && conflict?.count == 1)
                    #expect(try await store.read("/t/a") == "1")
                    _ = try await events.next()  // the other connection's write
                    let seen = try await store.transaction { transaction throws(XenGntError) -> String in
                        try await transaction.write("/t/b/c", "x")
                        try await transaction.remove("/t/a")
                        #expect(!(try await other.exists("/t/b/c")), "not visible before the commit")
                        return try await transaction.read("/t/b/c")
                    }
                    let committed = try await other.read("/t/b/c")
                    let removed = try await !other.exists("/t/a")
                    #expect(seen == "x" && committed == "x" && removed)
                    // The commit's events: the write and the removal.
                    let paths = [try await events.next()?.path, try await events.next()?.path]
                    #expect(Set(paths) == ["/t/b/c", "/t/a"])
                    try await watch.cancel()
                    // A transaction inside a transaction is EBUSY; a cancelled caller leaves none open.
                    let busy = await failure {
                        try await store.transaction { transaction throws(XenGntError) in
                            _ = try await transaction.send(XenStoreMessageType.transactionStart, payload: [0])
                        }
                    }
                    #expect(busy?.detail == "EBUSY")
                    let cancelled = Task {
                        withUnsafeCurrentTask { $0?.cancel() }
                        return await failure { try await store.transaction { _ throws(XenGntError) in } }
                    }
                    #expect(await cancelled.value?.code == .cancelled)
                    #expect(host.xen.xenstoreActivity(of: .dom0).transactions == 0)
                }
            }
        }

        @Test func aClosedStoreFailsWhatIsAskedOfIt() async throws {
            let host = try Host()
            let store = try XenStore(on: host.frontend.system)
            let watch = try await store.watch("data")
            await store.close()
            #expect(await failure { _ = try await store.read("domid") }?.code == .connectionLost)
            var events = watch.makeAsyncIterator()
            _ = try? await events.next()
            #expect(await failure { _ = try await events.next() }?.code == .connectionLost)
            #expect(
                await failure { _ = try XenStore(on: host.frontend.system, transport: .socket("/nowhere")) }?.code
                    == .xenstoreUnavailable
            )
        }

        /// Item 7 of the issue: the core learns the domain's id from XenStore and refuses to map
        /// the domain's own grants in PVH.
        @Test func anIdentifiedSystemRefusesOwnGrantsInPVH() async throws {
            let host = try Host()
            let system = try await XenSystem(host.frontend.system).identified()
            #expect(system.domainID == host.frontend.id)
            let shared = try GrantAllocator(on: system).share(pages: 1, with: host.frontend.id)
            let error = #expect(throws: XenGntError.self) {
                _ = try GrantDevice(on: system).map(shared.refs, from: host.frontend.id)
            }
            #expect(error?.code == .ownGrants && error?.errno == nil)
            try shared.unshare()
        }
    }
}

extension XenSystem {
    /// The same system, forgetting its domain id (as `.kernel` is until it learns it).
    init(_ other: XenSystem) { self.init(other.calls) }
}
