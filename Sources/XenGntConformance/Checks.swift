public import SystemPackage
public import XenGnt

/// Fails the case unless `condition` holds.
public func check(_ condition: Bool, _ message: @autoclosure () -> String, line: Int = #line) throws {
    if !condition { throw ConformanceFailure("\(message()) (line \(line))") }
}

/// Runs `body`, which must throw a `XenGntError` with the given code, errno, operation and
/// failing call (each checked only when given; `errno: .some(nil)` means "refused before the
/// kernel was asked").
public func checkFails(
    code: XenGntError.Code? = nil,
    errno: Errno?? = .none,
    operation: XenGntError.Operation? = nil,
    call: String? = nil,
    line: Int = #line,
    _ body: () throws -> Void
) throws {
    do {
        try body()
    } catch let error as XenGntError {
        if let code, error.code != code {
            throw ConformanceFailure("expected code \(code), got: \(error) (line \(line))")
        }
        if let call, error.call != call {
            throw ConformanceFailure("expected the failing call \(call), got: \(error) (line \(line))")
        }
        if case .some(let expected) = errno, error.errno != expected {
            throw ConformanceFailure("expected errno \(expected.map { "\($0)" } ?? "none"), got: \(error) (line \(line))")
        }
        if let operation, error.operation != operation {
            throw ConformanceFailure("expected operation \(operation), got: \(error) (line \(line))")
        }
        return
    }
    throw ConformanceFailure("expected a XenGntError\(code.map { " (\($0))" } ?? ""), but it succeeded (line \(line))")
}

/// Fails unless a raw call failed with `expected`.
public func check<T>(_ result: Result<T, Errno>, fails expected: Errno, _ what: String, line: Int = #line) throws {
    switch result {
    case .success: throw ConformanceFailure("\(what): expected \(expected), got success (line \(line))")
    case .failure(let errno) where errno != expected:
        throw ConformanceFailure("\(what): expected \(expected), got \(errno) (line \(line))")
    case .failure: return
    }
}

/// The value of a raw call that must succeed.
public func succeeds<T>(_ result: Result<T, Errno>, _ what: String, line: Int = #line) throws -> T {
    switch result {
    case .success(let value): return value
    case .failure(let errno): throw ConformanceFailure("\(what): expected success, got \(errno) (line \(line))")
    }
}

/// A recognisable byte pattern.
public func pattern(_ seed: UInt8, count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ $0 &* 7) }
}
