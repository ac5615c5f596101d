import SystemPackage
import XenGnt

extension Machine {
    /// A new domain with its kernel and main process.
    func addDomain(_ id: UInt16, type: GuestType, kernel configuration: SimulatedKernel) throws(Errno) -> (XenDomain, Process) {
        let domain = try hypervisor.createDomain(id, type: type)
        let kernel = DomainKernel(domain: domain, configuration: configuration)
        kernels[id] = kernel
        let main = spawn(in: kernel)
        kernel.mainSerial = main.serial
        xenstored.createHome(of: id)
        return (domain, main)
    }

    /// SIGKILL: the process's memory is unmapped and its descriptors closed, as `do_exit` does
    /// (`exit_mm`, then `exit_files`), releasing what they held (gntdev maps put, gntalloc pages
    /// freed, files released at their last reference). Afterwards its calls fail with `ESRCH`
    /// without touching the host.
    func kill(_ process: Process) {
        guard process.isAlive else { return }
        process.die()
        for address in process.areas.sorted() {
            guard let area = areas[address] else { continue }
            try? HostCalls.munmap(area.start, length: area.length)
            close(area)
        }
        for fd in process.descriptors.sorted() {
            try? HostCalls.close(fd)
            forget(fd)
        }
        processes[process.serial] = nil
        process.kernel.processes[process.pid] = nil
    }

    /// Takes a mapping out of the tables once the host has unmapped it: the driver's
    /// `vm_ops->close`, then the mapping's file reference.
    func close(_ area: VMArea) {
        let key = UInt(bitPattern: area.start)
        guard areas[key] === area else { return }
        areas[key] = nil
        area.process.areas.remove(key)
        if let file = area.file {
            file.close(area, self)
            file.drop(self)
        }
    }

    /// `xl destroy`: every process of the domain is killed (its kernel objects go), then Xen
    /// tears down the domain (`Hypervisor.destroy`). Its systems fail with `ESRCH` from then on.
    func destroyDomain(_ id: UInt16) {
        guard let kernel = kernels[id], kernel.domain.isAlive else { return }
        for process in kernel.processes.values.sorted(by: { $0.pid < $1.pid }) { kill(process) }
        hypervisor.destroy(kernel.domain)
        xenstored.removeHome(of: id)
    }
}
