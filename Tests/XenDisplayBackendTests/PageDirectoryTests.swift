import Testing
import XenDisplayBackend

/// Page-directory chains (`gref_dir_next_page`, `gref[]`) in both directions, and what a hostile
/// frontend can put in them.
@Suite struct PageDirectoryTests {
    /// A frontend's directory: pages keyed by ref, each `[next] + refs`.
    struct Directory {
        var pages: [UInt32: [UInt8]] = [:]
        var reads: [UInt32] = []

        mutating func add(_ ref: UInt32, next: UInt32, refs: [UInt32]) {
            var page = [UInt8](repeating: 0, count: 4096)
            for (i, word) in ([next] + refs).enumerated() {
                for b in 0..<4 { page[4 * i + b] = UInt8(truncatingIfNeeded: word >> (8 * UInt32(b))) }
            }
            pages[ref] = page
        }

        mutating func read(_ ref: UInt32) throws(DisplayRefusal) -> [UInt8] {
            reads.append(ref)
            guard let page = pages[ref] else { throw DisplayRefusal(.fault, "ref \(ref) not granted") }
            return page
        }

        /// The buffer refs 1000, 1001, … spread over directory pages 10, 11, ….
        static func linked(pages: Int) -> Directory {
            var directory = Directory()
            let dirPages = PageDirectory.directoryPages(forBufferPages: pages)
            for d in 0..<dirPages {
                let first = d * 1023
                let count = min(1023, pages - first)
                directory.add(
                    UInt32(10 + d),
                    next: d + 1 < dirPages ? UInt32(11 + d) : 0,
                    refs: (0..<count).map { UInt32(1000 + first + $0) }
                )
            }
            return directory
        }
    }

    @Test(arguments: [1, 300, 1023, 1024, 2025, 4000])
    func readsAChain(pages: Int) throws {
        var directory = Directory.linked(pages: pages)
        let (refs, visited) = try PageDirectory.readRefs(start: 10, pageCount: pages) { (ref) throws(DisplayRefusal) in
            try directory.read(ref)
        }
        #expect(refs == (0..<pages).map { UInt32(1000 + $0) })
        #expect(visited == directory.reads)
        #expect(visited.count == PageDirectory.directoryPages(forBufferPages: pages))
    }

    @Test func refusesACycle() {
        var directory = Directory()
        directory.add(10, next: 11, refs: Array(repeating: 5, count: 1023))
        directory.add(11, next: 10, refs: Array(repeating: 5, count: 1023))
        let error = #expect(throws: DisplayRefusal.self) {
            _ = try PageDirectory.readRefs(start: 10, pageCount: 3000) { (ref) throws(DisplayRefusal) in try directory.read(ref) }
        }
        #expect(error?.reason.contains("cyclic") == true)
        #expect(directory.reads == [10, 11])
    }

    @Test func refusesAShortChainAZeroRefAndAnUngrantedPage() {
        var directory = Directory()
        directory.add(10, next: 0, refs: Array(repeating: 5, count: 1023))
        #expect(throws: DisplayRefusal.self) {  // ends after one page of two
            _ = try PageDirectory.readRefs(start: 10, pageCount: 1024) { (ref) throws(DisplayRefusal) in try directory.read(ref) }
        }
        #expect(throws: DisplayRefusal.self) {  // a directory ref of 0
            _ = try PageDirectory.readRefs(start: 0, pageCount: 1) { (ref) throws(DisplayRefusal) in try directory.read(ref) }
        }
        directory.add(20, next: 0, refs: [5, 0, 7])
        #expect(throws: DisplayRefusal.self) {  // a buffer ref of 0
            _ = try PageDirectory.readRefs(start: 20, pageCount: 3) { (ref) throws(DisplayRefusal) in try directory.read(ref) }
        }
        #expect(throws: DisplayRefusal.self) {  // not granted
            _ = try PageDirectory.readRefs(start: 99, pageCount: 3) { (ref) throws(DisplayRefusal) in try directory.read(ref) }
        }
        #expect(throws: DisplayRefusal.self) {  // no pages
            _ = try PageDirectory.readRefs(start: 10, pageCount: 0) { (ref) throws(DisplayRefusal) in try directory.read(ref) }
        }
    }

    @Test func writesTheBackendsRefsAndKeepsTheFrontendsLinks() throws {
        let pages = 2500
        let refs = (0..<pages).map { UInt32(5000 + $0) }
        var written: [UInt32: [UInt32]] = [:]
        let links: [UInt32: UInt32] = [40: 41, 41: 42, 42: 0]
        let visited = try PageDirectory.writeRefs(refs, start: 40) { (ref, slice) throws(DisplayRefusal) -> UInt32 in
            written[ref] = Array(slice)
            return links[ref] ?? 0
        }
        #expect(visited == [40, 41, 42])
        #expect(written[40] == Array(refs[0..<1023]))
        #expect(written[41] == Array(refs[1023..<2046]))
        #expect(written[42] == Array(refs[2046...]))
    }
}
