import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// What a read or write does once the lock is dropped.
private enum IOStep {
    case done(Int)
    /// Do it on the host, on this private duplicate of the descriptor (closed afterwards), so
    /// that a concurrent close cannot make the number name another file meanwhile.
    case host(Int32, death: Int32, process: UncheckedBox<Process>)
    /// The driver has nothing yet: wait for the duplicate to become readable, then ask again.
    case wait(Int32, death: Int32, process: UncheckedBox<Process>)
}

/// `DEFAULT_POLLMASK`'s bits that `poll` reports even when not asked: errors and hang-ups.
private let alwaysReported = Int16(POLLERR | POLLHUP | POLLNVAL)

/// The blocking calls: read, write and poll wait on host descriptors without holding the
/// simulator's lock, so a blocked call never blocks another simulated call. Each also waits on
/// its process's death eventfd, so a killed process's blocked call ends (`ESRCH`).
extension XenSimulation {
    func read(_ serial: ProcessName, _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        var call: SimulatedCall? = .read
        while true {
            let step = try enter(serial, { _ in call ?? .read }, check: call != nil) { (context) throws(Errno) -> IOStep in
                if let file = try context.file(fd), !file.isHostBacked {
                    switch try file.read(into: buffer, context) {
                    case .bytes(let count):
                        return .done(count)
                    case .wouldBlock:
                        if try HostCalls.fcntl(fd, command: F_GETFL, argument: 0) & O_NONBLOCK != 0 {
                            throw .resourceTemporarilyUnavailable
                        }
                        return .wait(
                            try HostCalls.dup(fd),
                            death: try context.process.deathEventfd(),
                            process: UncheckedBox(context.process)
                        )
                    }
                }
                return .host(
                    try HostCalls.dup(fd),
                    death: try context.process.deathEventfd(),
                    process: UncheckedBox(context.process)
                )
            }
            call = nil
            switch step {
            case .done(let count):
                return count
            case .host(let copy, let death, let process):
                defer {
                    try? HostCalls.close(copy)
                    _ = process
                }
                if try HostCalls.fcntl(copy, command: F_GETFL, argument: 0) & O_NONBLOCK == 0 {
                    try waitReadable(copy, death: death)
                }
                return try HostCalls.read(copy, into: buffer)
            case .wait(let copy, let death, let process):
                defer {
                    try? HostCalls.close(copy)
                    _ = process
                }
                try waitReadable(copy, death: death)
            }
        }
    }

    func write(_ serial: ProcessName, _ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        let step = try enter(serial, .write) { (context) throws(Errno) -> IOStep in
            if let file = try context.file(fd), !file.isHostBacked { return .done(try file.write(from: buffer, context)) }
            return .host(try HostCalls.dup(fd), death: -1, process: UncheckedBox(context.process))
        }
        switch step {
        case .done(let count):
            return count
        case .host(let copy, _, let process), .wait(let copy, _, let process):
            defer {
                try? HostCalls.close(copy)
                _ = process
            }
            return try HostCalls.write(copy, from: buffer)
        }
    }

    /// Waits until `fd` is readable; `ESRCH` if the process dies first.
    private func waitReadable(_ fd: Int32, death: Int32) throws(Errno) {
        var entries = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: death, events: Int16(POLLIN), revents: 0)]
        while true {
            let ready = try entries.withUnsafeMutableBufferPointer { (buffer) throws(Errno) in
                try retryingOnInterrupt { () throws(Errno) in try HostCalls.poll(buffer, timeout: -1) }
            }
            if entries[1].revents != 0 { throw .noSuchProcess }
            if ready > 0 { return }
        }
    }

    /// `poll`: a simulated file without a poll operation is ready at once (`DEFAULT_POLLMASK`);
    /// one whose readiness is its host descriptor (an eventfd the driver signals, a memfd, an
    /// eventfd made through the seam) is polled on the host, with the lock dropped. Another
    /// process's number is `POLLNVAL`, as a number not in the caller's table is.
    func poll(_ serial: ProcessName, _ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int {
        let plan = try enter(serial, .poll) { (context) throws(Errno) -> PollPlan in
            var plan = PollPlan(process: UncheckedBox(context.process), death: try context.process.deathEventfd())
            for (index, entry) in descriptors.enumerated() {
                descriptors[index].revents = 0
                guard entry.fd >= 0 else { continue }
                switch context.lookup(entry.fd) {
                case .foreign:
                    plan.immediate.append((index, Int16(POLLNVAL)))
                case .host:
                    plan.host.append((index, pollfd(fd: entry.fd, events: entry.events, revents: 0)))
                case .file(let file):
                    if !file.isHostBacked { file.willPoll(context.machine) }
                    switch file.isHostBacked ? .host(events: -1) : file.poll {
                    case .ready(let mask):
                        plan.immediate.append((index, mask & (entry.events | alwaysReported)))
                    case .host(let events):
                        plan.host.append((index, pollfd(fd: entry.fd, events: entry.events & events, revents: 0)))
                    }
                }
            }
            return plan
        }
        let readyNow = plan.immediate.contains { $0.revents != 0 }
        var entries = plan.host.map(\.entry) + [pollfd(fd: plan.death, events: Int16(POLLIN), revents: 0)]
        _ = try entries.withUnsafeMutableBufferPointer { (buffer) throws(Errno) in
            try HostCalls.poll(buffer, timeout: readyNow ? 0 : timeout)
        }
        withExtendedLifetime(plan.process) {}
        if entries[entries.count - 1].revents != 0 { throw .noSuchProcess }
        var ready = 0
        for (index, revents) in plan.immediate where revents != 0 {
            descriptors[index].revents = revents
            ready += 1
        }
        for (slot, planned) in plan.host.enumerated() where entries[slot].revents != 0 {
            descriptors[planned.index].revents = entries[slot].revents
            ready += 1
        }
        return ready
    }
}

/// Which entries of a poll are answered at once and which on the host.
private struct PollPlan {
    /// Keeps the process, and so its death eventfd, alive while the host polls.
    let process: UncheckedBox<Process>
    let death: Int32
    var immediate: [(index: Int, revents: Int16)] = []
    var host: [(index: Int, entry: pollfd)] = []
}

extension XenSimulation {
    /// `enter`, with the fault check only on the first pass of a call that waits and retries.
    fileprivate func enter<T>(
        _ serial: ProcessName,
        _ call: (Context) -> SimulatedCall,
        check: Bool,
        _ body: (Context) throws(Errno) -> T
    ) throws(Errno) -> T {
        if check { return try enter(serial, call, body) }
        return try machine.withLock { (machine) throws(Errno) -> UncheckedBox<T> in
            UncheckedBox(try body(try machine.context(of: serial)))
        }.value
    }
}
