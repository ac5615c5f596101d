import XenGnt

extension SimulatedDomain {
    /// How this domain's simulated displays (vkms, the DMA-scanout display) reach their
    /// vblanks: ``SimulatedDisplayClock/automatic`` (the default) or driven by the test.
    public var displayClock: SimulatedDisplayClock {
        get { simulation.machine.withLock { machine in machine.kernel(of: self)?.displayClock ?? .automatic } }
        nonmutating set { simulation.machine.withLock { machine in machine.kernel(of: self)?.displayClock = newValue } }
    }

    /// One vblank on every display of this domain: pending flips reach the screen, their
    /// flip-complete events and the vblank events asked for are sent, pending writeback
    /// captures are composed. Returns how many displays had something pending.
    @discardableResult
    public func vblank() -> Int {
        simulation.machine.withLock { machine in
            guard let kernel = machine.kernel(of: self) else { return 0 }
            var busy = 0
            for kind in DRMDriverKind.allCases {
                guard let kms = kernel.drm[kind]?.kms else { continue }
                if kms.hasPendingWork { busy += 1 }
                kms.vblank(machine)
            }
            return busy
        }
    }
}
