import Testing
import XenDisplayBackend

/// The generated EDID 1.4 block: well formed, and describing the connector's mode.
@Suite struct EDIDTests {
    @Test(arguments: [(640, 480), (1920, 1080), (800, 600), (4095, 2160), (1, 1)])
    func describesTheConnector(width: Int, height: Int) throws {
        let edid = try #require(EDID(width: width, height: height, uniqueID: "id0"))
        #expect(edid.bytes.count == 128)
        #expect(EDID.isValid(edid.bytes))
        #expect(edid.bytes[18] == 1 && edid.bytes[19] == 4)
        let mode = try #require(EDID.preferredMode(edid.bytes))
        #expect(mode.width == width && mode.height == height)
        if width >= 640, width * height <= 1920 * 1080 { #expect(mode.refreshHz == 60) }  // 1x1 rounds to 58
        #expect(edid.bytes[126] == 0)
    }

    @Test func namesTheManufacturerAndSerial() throws {
        let a = try #require(EDID(width: 640, height: 480, uniqueID: "id0"))
        let b = try #require(EDID(width: 640, height: 480, uniqueID: "id1"))
        #expect(a.bytes[8] == 0x60 && a.bytes[9] == 0xae)  // "XEN"
        #expect(a.bytes[12..<16] != b.bytes[12..<16])
        #expect(String(decoding: a.bytes[77..<87], as: UTF8.self) == "Xen vdispl")
    }

    @Test func refusesWhatABaseBlockCannotDescribe() {
        #expect(EDID(width: 0, height: 480) == nil)
        #expect(EDID(width: 4096, height: 2160) == nil)
        var bytes = EDID(width: 640, height: 480)!.bytes
        bytes[60] ^= 1
        #expect(!EDID.isValid(bytes))
    }
}

/// The frontend's XenStore configuration as libxl writes it.
@Suite struct FrontendConfigurationTests {
    @Test func readsWhatLibxlWrites() throws {
        let store = ["be-alloc": "1", "0/resolution": "640x480", "0/unique-id": "id0", "1/resolution": "800x600"]
        let config = try FrontendConfiguration.read { store[$0] }
        #expect(config.backendAllocates)
        #expect(config.version == 1)
        #expect(
            config.connectors == [
                .init(index: 0, width: 640, height: 480, uniqueID: "id0"),
                .init(index: 1, width: 800, height: 600),
            ]
        )
    }

    @Test func versionsAndDefaults() throws {
        #expect(try FrontendConfiguration.negotiatedVersion(frontend: nil) == 1)
        #expect(try FrontendConfiguration.negotiatedVersion(frontend: "2") == 2)
        #expect(throws: DisplayRefusal.self) { try FrontendConfiguration.negotiatedVersion(frontend: "3") }
        let config = try FrontendConfiguration.read { $0 == "0/resolution" ? "1920x1080" : nil }
        #expect(!config.backendAllocates)
    }

    @Test(arguments: ["", "640", "640x", "x480", "0x480", "640x480x2", "-1x480", "99999x1", "axb"])
    func refusesBadResolutions(_ text: String) {
        #expect(FrontendConfiguration.parseResolution(text) == nil)
        #expect(throws: DisplayRefusal.self) { try FrontendConfiguration.read { $0 == "0/resolution" ? text : nil } }
    }
}
