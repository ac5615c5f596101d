import Testing
import XenGnt

@testable import XenGntBackend

@Suite struct XenStoreWire {
    @Test func messagesRoundTripWhetherTheyArriveWholeSplitOrTogether() throws {
        let messages = [
            XenStoreMessage(
                type: XenStoreMessageType.read,
                requestID: 7,
                payload: XenStoreMessage.payload(["/local/domain/3/name"])
            ),
            XenStoreMessage(
                type: XenStoreMessageType.watchEvent,
                requestID: 0xDEAD,
                payload: XenStoreMessage.payload(["/a/b", "tok"])
            ),
            XenStoreMessage(type: XenStoreMessageType.write, requestID: 9, transactionID: 4, payload: [0x2F, 0x78, 0, 1, 2, 0]),
            XenStoreMessage(type: XenStoreMessageType.error, requestID: 10, payload: XenStoreMessage.payload(["ENOENT"])),
        ]
        let stream = messages.flatMap(\.bytes)
        #expect(messages[0].bytes.count == 16 + 21)
        for chunk in [1, 3, 16, 17, 1000] {
            var parser = XenStoreMessageParser()
            var decoded: [XenStoreMessage] = []
            var offset = 0
            while offset < stream.count {
                let end = min(offset + chunk, stream.count)
                decoded += try stream[offset..<end].withUnsafeBytes { try parser.feed($0) }
                offset = end
            }
            #expect(decoded == messages)
        }
        #expect(messages[1].strings == ["/a/b", "tok"])
        #expect(messages[3].text == "ENOENT")
        #expect(XenStoreMessage(type: 1, payload: []).strings == [])
    }

    @Test func anOversizedHeaderIsAProtocolViolation() {
        var header = XenStoreMessage(type: XenStoreMessageType.read, payload: []).bytes
        header.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(4097), toByteOffset: 12, as: UInt32.self) }
        var parser = XenStoreMessageParser()
        #expect(throws: XenStoreMessageParser.ParseError.self) { _ = try header.withUnsafeBytes { try parser.feed($0) } }
    }

    @Test func xenstoredsErrorStringsBecomeCodes() {
        let cases: [(String, UInt32, XenGntError.Code)] = [
            ("ENOENT", XenStoreMessageType.read, .noSuchNode), ("EACCES", XenStoreMessageType.write, .accessDenied),
            ("EPERM", XenStoreMessageType.setPermissions, .accessDenied),
            ("EAGAIN", XenStoreMessageType.transactionEnd, .transactionConflict),
            ("EINVAL", XenStoreMessageType.read, .invalidRequest), ("ENOSPC", XenStoreMessageType.write, .quotaExceeded),
            ("EQUOTA", XenStoreMessageType.write, .quotaExceeded), ("E2BIG", XenStoreMessageType.watch, .quotaExceeded),
            ("E2BIG", XenStoreMessageType.read, .requestTooLarge), ("EEXIST", XenStoreMessageType.watch, .watchExists),
            ("EBUSY", XenStoreMessageType.transactionStart, .xenstoreRefused),
            ("EWHATEVER", XenStoreMessageType.read, .xenstoreRefused),
        ]
        for (name, type, code) in cases {
            let error = XenStoreErrors.error(name: name, type: type, operation: .xenstoreRead, path: "/x")
            #expect(error.code == code, "\(name)")
            #expect(error.detail == name && error.path == "/x" && error.call == XenStoreMessageType.name(type))
            #expect(!error.advice.isEmpty)
        }
        #expect(XenStoreErrors.error(name: "EQUOTA", type: 11, operation: .xenstoreWrite, path: nil).errno == nil)
        #expect(XenStorePermission("b12") == XenStorePermission(12, .readWrite))
        #expect(
            XenStorePermission("x1") == nil && XenStorePermission("r") == nil && XenStorePermission("n0")?.description == "n0"
        )
        #expect(XenbusState("4") == .connected && XenbusState("9") == .unknown && XenbusState(nil) == .unknown)
    }
}
