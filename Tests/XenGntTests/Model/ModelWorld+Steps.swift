import SystemPackage
import XenGnt
import XenGntTesting

extension ModelWorld {
    /// Runs `step` on the system, checks its outcome against what the model predicts, and
    /// updates the model. Steps whose preconditions do not hold (nothing to unmap) do nothing.
    func perform(_ step: Step, tally: Tally) throws {
        let op = step.operation
        func ok() { tally.note(op, "ok") }
        func skip() { tally.note(op, "skipped") }
        /// `body` must fail with `code`; the model does not change.
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
        case .grant:
            for ref in try frontend.grantPages(1 + a % 4, to: backend.id) { refs.append(RefModel(ref: ref, owner: frontend.id)) }
            ok()
        case .victimGrant:
            guard victimAlive else { return skip() }
            for ref in try victim.grantPages(1 + a % 3, to: backend.id) { refs.append(RefModel(ref: ref, owner: victim.id)) }
            ok()
        case .endAccess:
            guard let index = pick(1, of: frontend.id, seed: a)?.first else { return skip() }
            frontend.endAccess([refs[index].ref])
            refs[index].ended = true
            ok()

        case .map, .mapReadOnly:
            guard let chosen = pick(1 + a % 4, of: frontend.id, seed: b) else { return skip() }
            let access: Access = op == .map ? .readWrite : .readOnly
            let mapping = try gntdev.map(grantRefs(chosen), from: frontend.id, access: access)
            for index in chosen { refs[index].maps += 1 }
            mappings.append(MappingModel(mapping, refs: chosen, access: access))
            ok()
        case .mapVictim:
            guard let chosen = pick(1, of: victim.id, seed: b) else { return skip() }
            if victimAlive {
                let mapping = try gntdev.map(grantRefs(chosen), from: victim.id)
                refs[chosen[0]].maps += 1
                mappings.append(MappingModel(mapping, refs: chosen, access: .readWrite))
                ok()
            } else {
                try fails(.badGrants) { _ = try gntdev.map(grantRefs(chosen), from: victim.id) }
            }
        case .mapBadRef:
            // An ended ref, or one that was never granted, among good ones.
            let live = Set(refs.filter { !isFreed($0) }.map(\.ref))
            let ended = refs.first { $0.owner == frontend.id && isFreed($0) && !live.contains($0.ref) }
            let bad = a % 2 == 0 ? ended?.ref ?? GrantRef(UInt32(20_000 + a)) : GrantRef(UInt32(20_000 + a))
            try fails(.badGrants) {
                _ = try gntdev.map(grantRefs(pick(1, of: frontend.id, seed: b) ?? []) + [bad], from: frontend.id)
            }
        case .mapEmpty:
            try fails(.emptyRequest) { _ = try gntdev.map([GrantRef](), from: frontend.id) }
        case .mapTooMany:
            guard let one = pick(1, of: frontend.id, seed: b) else { return skip() }
            let many = [GrantRef](repeating: refs[one[0]].ref, count: Self.gntdevLimit + 1 + a % 5)
            try fails(.tooManyPages) { _ = try gntdev.map(many, from: frontend.id) }
        case .mapMisstated:
            guard let chosen = pick(2, of: frontend.id, seed: b) else { return skip() }
            try fails(.countMismatch) {
                _ = try gntdev.map(MisstatedRefs(refs: grantRefs(chosen), claimed: 1 + 2 * (a % 2)), from: frontend.id)
            }
        case .mapReserved:
            try fails(.reservedDomain) { _ = try gntdev.map([GrantRef(8)], from: DomainID(UInt16(0x7FF0 + a % 16))) }
        case .mapOwnGrants:
            try fails(.ownGrants) { _ = try frontendDevice.map([GrantRef(8)], from: frontend.id) }

        case .unmap:
            guard !mappings.isEmpty else { return skip() }
            let model = mappings.remove(at: a % mappings.count)
            try model.mapping.value.take()!.unmap()
            for index in model.refs { refs[index].maps -= 1 }
            if let (index, offset) = model.clearByte, !isFreed(refs[index]), refs[index].owner == frontend.id || victimAlive {
                let owner = refs[index].owner == frontend.id ? frontend : victim
                if try owner.read(grant: refs[index].ref, at: offset, count: 1) != [0] {
                    throw ModelMismatch(description: "\(step): the clear-byte notification did not clear byte \(offset)")
                }
            }
            ok()
        case .write:
            guard !mappings.isEmpty else { return skip() }
            let model = mappings[a % mappings.count]
            let offset = b % (model.refs.count * xenPageSize)
            let byte = UInt8(truncatingIfNeeded: a | 1)
            if model.access == .readOnly {
                try fails(.readOnlyMapping) { try model.mapping.borrow { try $0.withUnsafeMutableBytes { $0[offset] = byte } } }
                return
            }
            try model.mapping.borrow { try $0.withUnsafeMutableBytes { $0[offset] = byte } }
            let index = model.refs[offset / xenPageSize]
            let owner = refs[index].owner == frontend.id ? frontend : victim
            // Zero copy: the granting domain sees the byte at once (while it lives).
            if owner == frontend || victimAlive,
                try owner.read(grant: refs[index].ref, at: offset % xenPageSize, count: 1) != [byte]
            {
                throw ModelMismatch(description: "\(step): a write through the mapping is not in the granting domain's page")
            }
            if let clear = model.clearByte, clear.ref == index, clear.offset == offset % xenPageSize { model.clearByte = nil }
            ok()
        case .notifyClearByte:
            guard let model = mappings.last(where: { $0.access == .readWrite && $0.clearByte == nil }) else { return skip() }
            let offset = b % (model.refs.count * xenPageSize)
            try model.mapping.borrow { try $0.setUnmapNotification(.clearByte(at: offset)) }
            // Only checked when this is the page's only mapping: another mapping may write it.
            if model.refs.allSatisfy({ refs[$0].maps == 1 }) && Set(model.refs).count == model.refs.count {
                model.clearByte = (model.refs[offset / xenPageSize], offset % xenPageSize)
            }
            ok()
        case .notifyOutOfRange:
            guard let model = mappings.first else { return skip() }
            try fails(.outOfRange) {
                try model.mapping.borrow { try $0.setUnmapNotification(.clearByte(at: model.refs.count * xenPageSize + a)) }
            }
        case .notifyUnboundPort:
            guard let model = mappings.first else { return skip() }
            try fails(.eventChannelNotBound) {
                try model.mapping.borrow { try $0.setUnmapNotification(.sendEvent(port: Self.port)) }
            }
        case .mappedRange:
            guard let model = mappings.first,
                let (address, offset, pages) = model.mapping.borrow({
                    ($0.baseAddress + b % $0.byteCount, $0.offset, $0.pageCount)
                })
            else {
                var local = 0
                return try fails(.notFound) { _ = try gntdev.mappedRange(containing: &local) }
            }
            let range = try gntdev.mappedRange(containing: address)
            if range.offset != offset || range.pageCount != pages {
                throw ModelMismatch(description: "\(step): mappedRange \(range), mapping at \(offset)")
            }
            ok()

        default:
            try performBufferStep(step, tally: tally)
        }
    }
}
