import SystemPackage
import XenGnt
import XenGntBackend

#if canImport(Glibc)
import Glibc
#endif

/// `/dev/xen/xenbus` (Linux 6.1 `drivers/xen/xenbus/xenbus_dev_frontend.c`): the domain's
/// XenStore connection, relayed by its kernel. Each open file is a connection of the domain to
/// the host's xenstored (the kernel keeps the caller's request ids and transaction ids per file).
struct XenbusDevice: KernelDriver {
    static let path = "/dev/xen/xenbus"
    var device: SimulatedKernel.Device? { .xenbus }
    var nodes: [DeviceNode] { [DeviceNode(path: Self.path, major: 10, minor: 125)] }

    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        XenStoreFile(kernel: context.kernel, node: node, daemon: context.machine.xenstored, viaKernel: true)
    }
}

/// xenstored's Unix socket, in Dom0 (the domain that runs it): a privileged connection.
struct XenstoredSocket: SocketEndpoint {
    static let path = "/var/run/xenstored/socket"
    var path: String { Self.path }

    func connect(_ context: Context) throws(Errno) -> OpenFile {
        XenStoreFile(
            kernel: context.kernel,
            node: DeviceNode(path: Self.path, major: 0, minor: 0),
            daemon: context.machine.xenstored,
            viaKernel: false
        )
    }
}

/// One connection to the simulated xenstored: a `/dev/xen/xenbus` file or a socket.
///
/// Writes carry whole or partial messages. Through the kernel's device a message (header
/// included) must fit its 4096-byte buffer (`EINVAL` for a write that overflows it, `E2BIG` for
/// a header announcing more), one message is taken per write, and a watch is registered by the
/// kernel itself: a refusal fails the write with xenstored's errno, and the first event comes
/// before the `OK`. Through the socket, a header announcing more than 4096 bytes makes
/// xenstored drop the connection (reads then see its end).
final class XenStoreFile: DeviceFile {
    let daemon: XenStoreDaemon
    let viaKernel: Bool
    private var connection: XenStoreConnectionState!
    /// Bytes of a message not yet complete.
    private var input: [UInt8] = []
    /// Bytes of messages taken from the connection but not yet read.
    private var output: [UInt8] = []
    /// xenstored dropped the connection.
    private var dropped = false

    init(kernel: DomainKernel, node: DeviceNode, daemon: XenStoreDaemon, viaKernel: Bool) {
        self.daemon = daemon
        self.viaKernel = viaKernel
        super.init(kernel: kernel, node: node)
        connection = daemon.connect(domain: viaKernel ? kernel.domain.id : 0, viaKernel: viaKernel) { [weak self] in
            self?.setReadable(true)
        }
    }

    override var poll: PollAnswer { .host(events: Int16(POLLIN)) }

    override func status() -> stat {
        guard !viaKernel else { return super.status() }
        var info = stat()
        info.st_mode = S_IFSOCK | 0o777
        return info
    }

    override func read(into buffer: UnsafeMutableRawBufferPointer, _ context: Context) throws(Errno) -> ReadOutcome {
        while output.count < buffer.count, let message = connection.dequeue() { output += message.bytes }
        guard !output.isEmpty else {
            if dropped { return .bytes(0) }
            setReadable(false)
            return .wouldBlock
        }
        let count = min(buffer.count, output.count)
        output.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        output.removeFirst(count)
        if output.isEmpty, !connection.hasOutput, !dropped { setReadable(false) }
        return .bytes(count)
    }

    override func write(from buffer: UnsafeRawBufferPointer, _ context: Context) throws(Errno) -> Int {
        if dropped { throw .brokenPipe }
        let header = XenStoreMessage.headerSize
        if viaKernel, buffer.count > XenStoreMessage.payloadLimit - input.count {
            input = []
            throw .invalidArgument
        }
        input.append(contentsOf: buffer)
        while input.count >= header {
            let length = Int(input.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self) })
            if viaKernel, header + length > XenStoreMessage.payloadLimit {
                input = []
                throw .argListTooLong
            }
            if !viaKernel, length > XenStoreMessage.payloadLimit {
                dropped = true
                daemon.disconnect(connection)
                setReadable(true)
                return buffer.count
            }
            guard input.count >= header + length else { break }
            let words = input.withUnsafeBytes { raw in (0..<3).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) }
            }
            let message = XenStoreMessage(
                type: words[0],
                requestID: words[1],
                transactionID: words[2],
                payload: Array(input[header..<(header + length)])
            )
            // The kernel acts on one message per write and drops what follows it.
            input = viaKernel ? [] : Array(input[(header + length)...])
            try process(message)
        }
        return buffer.count
    }

    private func process(_ request: XenStoreMessage) throws(Errno) {
        let (reply, then) = daemon.handle(request, from: connection)
        guard viaKernel, request.type == XenStoreMessageType.watch else {
            connection.enqueue(reply)
            for event in then { connection.enqueue(event) }
            return
        }
        if reply.type == XenStoreMessageType.error {
            throw XenStoreErrors.errnos[reply.text] ?? .invalidArgument
        }
        for event in then { connection.enqueue(event) }
        connection.enqueue(reply)
    }

    override func release(_ machine: Machine) {
        daemon.disconnect(connection)
    }
}
