import XenGnt
import XenGntConformance

#if canImport(Glibc)
import Glibc
#endif

/// A child process with its stdout (and, for commands, stderr) on a pipe.
struct Child {
    let pid: pid_t
    let output: Int32

    /// Starts `arguments` (searched in PATH) with stdin from /dev/null.
    static func spawn(_ arguments: [String], capturingErrors: Bool) throws -> Child {
        var pipe: [Int32] = [0, 0]
        guard Glibc.pipe(&pipe) == 0 else { throw RunnerError("pipe: errno \(errno)") }
        for end in pipe { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
        if capturingErrors { posix_spawn_file_actions_adddup2(&actions, pipe[1], 2) }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        // The child starts with no signal blocked and every signal at its default: a Swift
        // concurrency thread runs with signals blocked, and posix_spawn passes the caller's mask
        // on. `xl destroy` forks a child and waits for its SIGCHLD; with SIGCHLD blocked it
        // waits forever.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        sigfillset(&signals)
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, environ)
        close(pipe[1])
        guard status == 0 else {
            close(pipe[0])
            throw RunnerError("posix_spawnp \(arguments[0]): errno \(status)")
        }
        return Child(pid: pid, output: pipe[0])
    }

    /// Reads until `stop` says the text so far is complete, end of file, or `timeout`.
    func read(timeout: Duration, until stop: (String) -> Bool = { _ in false }) -> (text: String, timedOut: Bool) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero { return (String(decoding: bytes, as: UTF8.self), true) }
            var descriptor = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: max(1, milliseconds(left))))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            let count = Glibc.read(output, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return (String(decoding: bytes, as: UTF8.self), false) }
            bytes += chunk[..<count]
            if bytes.contains(UInt8(ascii: "\n")), stop(String(decoding: bytes, as: UTF8.self)) {
                return (String(decoding: bytes, as: UTF8.self), false)
            }
        }
    }

    /// Waits for the process to end; its wait status.
    func reap() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}

/// Whole milliseconds of a duration.
func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

/// Runs a command to its end (bounded) and returns its output; fails unless it exits 0.
func command(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> String {
    let child = try Child.spawn(arguments, capturingErrors: true)
    let (text, timedOut) = child.read(timeout: timeout)
    if timedOut { Glibc.kill(child.pid, SIGKILL) }
    close(child.output)
    let status = child.reap()
    guard !timedOut, status == 0 else {
        throw RunnerError(
            "\(arguments.joined(separator: " ")) \(timedOut ? "timed out" : "exited with status \(status >> 8)"): \(text.suffix(500))"
        )
    }
    return text
}

/// A holder: this runner started again as `xengnt-lab-runner --hold <holding>...` (see
/// `holdAndWait`), a separate process that never runs its owners' deinit.
struct KernelHolder: HolderProcess {
    let pid: pid_t
    let refs: [[GrantRef]]

    static func spawn(_ holdings: [Holding]) throws -> KernelHolder {
        var path = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &path, path.count - 1)
        guard length > 0 else { throw RunnerError("readlink /proc/self/exe: errno \(errno)") }
        let executable = String(decoding: path[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let child = try Child.spawn([executable, "--hold"] + holdings.map(\.encoded), capturingErrors: false)
        defer { close(child.output) }
        let (text, _) = child.read(timeout: .seconds(120)) { $0.hasPrefix("READY ") || $0.hasPrefix("ERROR ") }
        guard let line = text.split(separator: "\n").first, line.hasPrefix("READY ") else {
            Glibc.kill(child.pid, SIGKILL)
            _ = child.reap()
            throw ConformanceFailure(
                "holder of \(holdings.map(\.description).joined(separator: ", ")): \(text.isEmpty ? "no answer" : String(text.prefix(500)))"
            )
        }
        let lists = line.dropFirst("READY ".count).split(separator: ";", omittingEmptySubsequences: false)
        let refs = lists.map { $0.split(separator: ",").compactMap { UInt32($0).map { GrantRef($0) } } }
        guard refs.count == holdings.count else {
            throw ConformanceFailure("holder reported \(refs.count) ref lists for \(holdings.count) holdings")
        }
        return KernelHolder(pid: child.pid, refs: refs)
    }

    func kill() async throws {
        guard Glibc.kill(pid, SIGKILL) == 0 else { throw ConformanceFailure("kill \(pid): errno \(errno)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw ConformanceFailure("waitpid \(pid): errno \(errno)") }
        }
        // WIFSIGNALED and WTERMSIG: the low 7 bits are the signal.
        if status & 0x7F != SIGKILL {
            throw ConformanceFailure("the holder ended before the SIGKILL (wait status \(status))")
        }
    }
}

/// The holder process's whole life: take `holdings` on the kernel, report the refs on stdout
/// (`READY <refs,...;refs,...>`), and wait to be killed.
func holdAndWait(_ words: [String]) -> Never {
    let holdings = words.compactMap(Holding.init(encoded:))
    guard holdings.count == words.count else {
        print("ERROR bad holding in \(words.joined(separator: " ").prefix(200))")
        exit(2)
    }
    do {
        let held = try HeldResources(holdings, on: .kernel)
        print("READY " + held.refs.map { $0.map { String($0.rawValue) }.joined(separator: ",") }.joined(separator: ";"))
        fflush(nil)
        while true { withExtendedLifetime(held) { _ = pause() } }
    } catch {
        print(String("ERROR \(error)".map { $0.isNewline ? " " : $0 }))
        exit(1)
    }
}
