extension ConformanceSuite {
    /// XenGntBackend's cases: XenStore, event channels, shared rings and the device lifecycle.
    static var backendCases: [ConformanceCase] {
        xenstoreCases + xenstoreWatchCases + xenstoreQuotaCases + eventChannelCases + ringCases + lifecycleCases + interopCases
    }
}
