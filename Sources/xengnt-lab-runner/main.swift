// The lab's in-guest runner: runs the conformance cases of one domain on the real kernel and
// prints `PASS|FAIL|SKIP <case> <domain>` per case, `TIME <case> <domain> <ms>`, and a closing
// `N passed, N failed` (a SKIP counts as failed: the lab must run everything).
//
//   xengnt-lab-runner --role dom0|pv|pvh|victim [--case NAME]... [--list]
//   xengnt-lab-runner --hold <holding>...     (a holder process, started by the runner itself)
//
// Dom0 writes the domids to /xengnt/domains/{dom0,pv,pvh} ("none" for a DomU it could not
// create); each runner waits for them, then runs its cases in suite order, meeting its peers
// under /xengnt/run. The victim's id (/xengnt/domains/victim) is read when a case needs it.
// A DomU writes /xengnt/done/<role> when it is finished. `--list` prints the selected cases,
// one a line: name, roles (comma-separated), summary, tab-separated.
import CXenTools
import XenGnt
import XenGntConformance

#if canImport(Glibc)
import Glibc
#endif

/// Prints a line and flushes it at once: the lab reads the console as it goes.
func emit(_ line: String) {
    print(line)
    fflush(nil)
}

func fail(_ message: String) -> Never {
    emit("FAIL runner \(CommandLine.arguments.dropFirst().joined(separator: " ")) \(message)")
    emit("0 passed, 1 failed")
    exit(2)
}

if CommandLine.arguments.dropFirst().first == "--hold" {
    holdAndWait(Array(CommandLine.arguments.dropFirst(2)))
}

var role: LabRole?
var only: Set<String> = []
var list = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--role":
        guard let value = arguments.next(), let parsed = LabRole(rawValue: value) else {
            fail("--role takes dom0, pv, pvh or victim")
        }
        role = parsed
    case "--case":
        guard let value = arguments.next() else { fail("--case takes a case name") }
        only.formUnion(value.split(separator: ",").map(String.init))
    case "--list":
        list = true
    default:
        fail("unknown argument \(argument)")
    }
}
// Hand-run cases (they hang or crash a domain) run only when named.
let selectable = ConformanceSuite.cases + ConformanceSuite.handRunCases.filter { only.contains($0.name) }
let unknown = only.subtracting(selectable.map(\.name))
if !unknown.isEmpty { fail("no such case: \(unknown.sorted().joined(separator: ", "))") }
let selected = selectable.filter { only.isEmpty || only.contains($0.name) }
if list {
    for item in selected { print("\(item.name)\t\(item.roles.map(\.rawValue).joined(separator: ","))\t\(item.summary)") }
    exit(0)
}
guard let role else { fail("--role is required") }

// xenstore: retry until it answers and Dom0 has published the domids (bounded).
func waitForStore() -> (OpaquePointer, [LabRole: DomainID]) {
    let deadline = ContinuousClock.now.advanced(by: .seconds(180))
    var store: OpaquePointer?
    while ContinuousClock.now < deadline {
        if store == nil { store = xs_open(0) }
        if let store {
            var ids: [LabRole: DomainID] = [:]
            for each in LabRole.permanent {
                guard let text = KernelWorld.read(store, "/xengnt/domains/\(each)") else { continue }
                // "none": Dom0 could not create that DomU. Its cases fail at once (its
                // /xengnt/done key says why); the id is one no domain has.
                ids[each] = text == "none" ? DomainID(0x7FEF) : UInt16(text).map { DomainID($0) }
            }
            if ids.count == LabRole.permanent.count { return (store, ids) }
        }
        usleep(100_000)
    }
    fail("xenstore or /xengnt/domains did not appear within 180 s")
}

let (store, ids) = waitForStore()
let world: KernelWorld
do {
    world = try KernelWorld(role: role, store: store, ids: ids)
} catch {
    fail("\(error)")
}
let uptime = (try? KernelWorld.readFile("/proc/uptime"))?.split(separator: " ").first ?? "?"
emit(
    "INFO runner \(role) domid \(world.domainID(of: role).rawValue) guest \(XenCapabilities.probe().guestType?.rawValue ?? "?") uptime \(uptime)s"
)

var passed = 0
var failed = 0
for item in selected where item.roles.contains(role) {
    let result = await item.run(as: role, in: world)
    emit(result.description)
    let c = result.duration.components
    emit("TIME \(item.name) \(role) \(c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000)")
    if result.outcome == .pass { passed += 1 } else { failed += 1 }
}
emit("\(passed) passed, \(failed) failed")
if role != .dom0 {
    try? KernelWorld.write(store, "/xengnt/done/\(role)", "\(passed) passed, \(failed) failed")
}
xs_close(store)
exit(failed == 0 ? 0 : 1)
