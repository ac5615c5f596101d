import SystemPackage
import XenGnt
import XenGntTesting

extension ModelWorld {
    /// The dma-buf, gntalloc, copy and fault steps.
    func performBufferStep(_ step: Step, tally: Tally) throws {
        let op = step.operation
        func ok() { tally.note(op, "ok") }
        func skip() { tally.note(op, "skipped") }
        func fails(_ code: XenGntError.Code, _ body: () throws -> Void) throws {
            do {
                try body()
            } catch let error as XenGntError where error.code == code {
                tally.note(op, code.name)
                return
            } catch {
                throw ModelMismatch(description: "\(step): expected \(code), got \(error)")
            }
            throw ModelMismatch(description: "\(step): expected \(code), but it succeeded")
        }
        let (a, b) = (step.a, step.b)

        switch op {
        case .export:
            guard let chosen = pick(1 + a % 4, of: frontend.id, seed: b) else { return skip() }
            let exported = try gntdev.exportDmaBuf(
                refs: grantRefs(chosen),
                from: frontend.id,
                allocation: DmaBufAllocation.allCases[a % 3]
            )
            for index in chosen { refs[index].maps += 1 }
            exports.append(ExportModel(exported, refs: chosen))
            ok()
        case .exportBadRef:
            try fails(.exportRejected) { _ = try gntdev.exportDmaBuf(refs: [GrantRef(UInt32(20_000 + a))], from: frontend.id) }
        case .exportInPV:
            try fails(.exportRefusedInPV) { _ = try dom0Device.exportDmaBuf(refs: [GrantRef(8)], from: frontend.id) }
        case .exportOutOfMemory:
            guard let chosen = pick(1, of: frontend.id, seed: b) else { return skip() }
            xen.injectFault(.noMemory, on: .ioctl(.exportFromRefs), domain: backend.id)
            try fails(.outOfMemory) {
                _ = try gntdev.exportDmaBuf(refs: grantRefs(chosen), from: frontend.id, allocation: .contiguousCoherent)
            }
        case .duplicate:
            guard let model = exports.first(where: { $0.owner != nil }),
                let holder = try model.owner?.borrow({ try $0.duplicate() })
            else { return skip() }
            model.holders.append(Held(holder))
            ok()
        case .closeHolder:
            guard let model = exports.first(where: { !$0.holders.isEmpty }) else { return skip() }
            try model.holders.removeLast().value.take()!.close()
            settle(model)
            ok()
        case .mapExport:
            guard let model = exports.first(where: { $0.owner != nil }),
                let holder = try model.owner?.borrow({ try $0.duplicate() })
            else { return skip() }
            try fails(.notMappable) { _ = try holder.map() }
        case .release:
            guard let model = exports.first(where: { $0.owner != nil && $0.pending == nil }) else { return skip() }
            model.pending = Held(try model.owner!.value.take()!.release())
            model.owner = nil
            settle(model)
            ok()
        case .wait:
            guard let model = exports.first(where: { $0.pending != nil }),
                let released = try model.pending?.borrow({ try $0.wait(timeout: .zero) })
            else { return skip() }
            if released != model.holders.isEmpty {
                throw ModelMismatch(description: "\(step): wait said released \(released) with \(model.holders.count) holders")
            }
            ok()
        case .dropPending:
            guard let model = exports.first(where: { $0.pending != nil }) else { return skip() }
            model.pending = nil
            settle(model)
            ok()
        case .releaseAndWait:
            guard let model = exports.first(where: { $0.owner != nil && $0.pending == nil }) else { return skip() }
            let held = !model.holders.isEmpty
            let owner = model.owner!
            model.owner = nil
            if held {
                try fails(.timedOut) { try owner.value.take()!.releaseAndWait(timeout: .zero) }
            } else {
                try owner.value.take()!.releaseAndWait(timeout: .zero)
                ok()
            }
            settle(model)

        case .importBuffer:
            let pages = 1 + a % 3
            let imported = try dom0Device.importDmaBuf(DmaBuf.udmabuf(pages: pages, on: dom0.system), to: frontend.id)
            if imported.refs.contains(where: { dom0.grantee(of: $0) != frontend.id }) {
                throw ModelMismatch(description: "\(step): an imported ref is not granted to the frontend")
            }
            imports.append((Held(imported), pages))
            ok()
        case .importWrongCount:
            try fails(.pageCountMismatch) {
                _ = try dom0Device.importDmaBuf(
                    DmaBuf.udmabuf(pages: 1 + a % 2, on: dom0.system),
                    to: frontend.id,
                    pageCount: 3 + a % 2
                )
            }
        case .releaseImport:
            guard !imports.isEmpty else { return skip() }
            let entry = imports.remove(at: a % imports.count)
            let buffer = try entry.import.value.take()!.release()
            if try buffer.size() != entry.pages * xenPageSize {
                throw ModelMismatch(description: "\(step): the buffer handed back has another size")
            }
            ok()

        case .share:
            let pages = 1 + a % 12
            let used = shares.reduce(0) { $0 + $1.pages }
            if used + pages > Self.gntallocLimit {
                try fails(.gntallocLimit) { _ = try allocator.share(pages: pages, with: frontend.id) }
            } else {
                shares.append((Held(try allocator.share(pages: pages, with: frontend.id)), pages))
                ok()
            }
        case .unshare:
            guard !shares.isEmpty else { return skip() }
            try shares.remove(at: a % shares.count).share.value.take()!.unshare()
            ok()

        case .copy:
            guard let index = pick(1, of: frontend.id, seed: a, includingEnded: true)?.first else { return skip() }
            var byte: UInt8 = 0
            let expected: GrantStatus = refs[index].ended ? .generalError : .okay
            try withUnsafeMutableBytes(of: &byte) { local in
                var segments = [
                    GrantCopySegment(
                        from: .grant(ForeignGrant(domain: frontend.id, ref: refs[index].ref), offset: b % xenPageSize),
                        to: .local(local.baseAddress!),
                        length: 1
                    )
                ]
                try gntdev.copy(&segments)
                if segments[0].status != expected {
                    throw ModelMismatch(description: "\(step): copy status \(segments[0].status), expected \(expected)")
                }
            }
            ok()
        case .copyCrossingPage:
            var byte: UInt8 = 0
            try withUnsafeMutableBytes(of: &byte) { local in
                var segments = [
                    GrantCopySegment(
                        from: .grant(ForeignGrant(domain: frontend.id, ref: 8), offset: xenPageSize - a % 8),
                        to: .local(local.baseAddress!),
                        length: 9 + b % 100
                    )
                ]
                try fails(.outOfRange) { try gntdev.copy(&segments) }
            }

        case .interrupt:
            // EINTR is retried: the next calls succeed all the same.
            xen.injectFault(.interrupted, on: .ioctl(nil), times: 1 + a % 3, domain: backend.id)
            xen.injectFault(.interrupted, on: .mmap, times: 1, domain: backend.id)
            guard let chosen = pick(1, of: frontend.id, seed: b) else {
                _ = try gntdev.setMaxGrants(8)
                return ok()
            }
            let mapping = try gntdev.map(grantRefs(chosen), from: frontend.id)
            refs[chosen[0]].maps += 1
            mappings.append(MappingModel(mapping, refs: chosen, access: .readWrite))
            ok()
        case .destroyVictim:
            guard victimAlive, a % 8 == 0 else { return skip() }
            xen.destroyDomain(victim.id)
            victimAlive = false
            ok()
        default:
            fatalError("unhandled step \(step)")
        }
    }

    /// Once nothing holds an export (its descriptor, holders, a wait), the model drops it; its
    /// pages are unmapped as soon as the kernel's buffer goes.
    func settle(_ model: ExportModel) {
        if !model.isLive, !model.refs.isEmpty, exports.contains(where: { $0 === model }) {
            if model.maps {
                for index in model.refs { refs[index].maps -= 1 }
                model.maps = false
            }
            if model.pending == nil { exports.removeAll { $0 === model } }
        }
    }
}
