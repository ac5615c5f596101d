import CXenGnt
import Testing
import XenGnt

/// The uapi as Swift sees it equals the table of Documentation/KernelFacts.md (Linux 6.1, x86_64).
extension Simulated {
    @Suite struct Layout {
        @Test func requestNumbersMatchTheKernel() {
            #expect(cxg_request_gntdev_map_grant_ref() == 0x0018_4700)
            #expect(cxg_request_gntdev_unmap_grant_ref() == 0x0010_4701)
            #expect(cxg_request_gntdev_get_offset_for_vaddr() == 0x0018_4702)
            #expect(cxg_request_gntdev_set_max_grants() == 0x0004_4703)
            #expect(cxg_request_gntdev_set_unmap_notify() == 0x0010_4707)
            #expect(cxg_request_gntdev_grant_copy() == 0x0010_4708)
            #expect(cxg_request_gntdev_dmabuf_exp_from_refs() == 0x0014_4709)
            #expect(cxg_request_gntdev_dmabuf_exp_wait_released() == 0x0008_470a)
            #expect(cxg_request_gntdev_dmabuf_imp_to_refs() == 0x0014_470b)
            #expect(cxg_request_gntdev_dmabuf_imp_release() == 0x0008_470c)
            #expect(cxg_request_gntalloc_alloc_gref() == 0x0018_4705)
            #expect(cxg_request_gntalloc_dealloc_gref() == 0x0010_4706)
            #expect(cxg_request_gntalloc_set_unmap_notify() == 0x0010_4707)
            // _IOW('b', 0, __u64) and _IOW('b', 1, const char *) on LP64.
            #expect(cxg_request_dma_buf_sync() == 0x4008_6200)
            #expect(cxg_request_dma_buf_set_name() == 0x4008_6201)
        }

        @Test func structSizesMatchTheKernel() {
            #expect(MemoryLayout<ioctl_gntdev_map_grant_ref>.size == 24)
            #expect(MemoryLayout<ioctl_gntdev_grant_ref>.size == 8)
            #expect(MemoryLayout<ioctl_gntdev_unmap_grant_ref>.size == 16)
            #expect(MemoryLayout<ioctl_gntdev_get_offset_for_vaddr>.size == 24)
            #expect(MemoryLayout<ioctl_gntdev_set_max_grants>.size == 4)
            #expect(MemoryLayout<ioctl_gntdev_unmap_notify>.size == 16)
            #expect(MemoryLayout<ioctl_gntdev_grant_copy>.size == 16)
            #expect(MemoryLayout<ioctl_gntdev_grant_copy_segment>.size == 24)
            #expect(MemoryLayout<ioctl_gntdev_dmabuf_exp_from_refs>.size == 20)
            #expect(MemoryLayout<ioctl_gntdev_dmabuf_exp_wait_released>.size == 8)
            #expect(MemoryLayout<ioctl_gntdev_dmabuf_imp_to_refs>.size == 20)
            #expect(MemoryLayout<ioctl_gntdev_dmabuf_imp_release>.size == 8)
            #expect(MemoryLayout<ioctl_gntalloc_alloc_gref>.size == 24)
            #expect(MemoryLayout<ioctl_gntalloc_dealloc_gref>.size == 16)
            #expect(MemoryLayout<ioctl_gntalloc_unmap_notify>.size == 16)
        }

        @Test func flexibleArraysStartWhereTheKernelReadsThem() {
            #expect(cxg_offsetof_map_grant_ref_refs() == 16)
            #expect(cxg_offsetof_exp_from_refs_refs() == 16)
            #expect(cxg_offsetof_imp_to_refs_refs() == 16)
            #expect(cxg_offsetof_alloc_gref_ids() == 16)
            #expect(cxg_offsetof_copy_segment_status() == 20)
        }

        @Test(arguments: [0, 1, 2, 3, 2025, 65536])
        func flexibleSizesAreOffsetPlusEntriesAtLeastSizeof(count: Int) {
            #expect(cxg_map_grant_ref_size(UInt32(count)) == max(24, 16 + 8 * count))
            #expect(cxg_exp_from_refs_size(UInt32(count)) == max(20, 16 + 4 * count))
            #expect(cxg_imp_to_refs_size(UInt32(count)) == max(20, 16 + 4 * count))
            #expect(cxg_alloc_gref_size(UInt32(count)) == max(24, 16 + 4 * count))
        }

        @Test func grantRefHasTheKernelsLayout() {
            #expect(MemoryLayout<GrantRef>.size == 4)
            #expect(MemoryLayout<GrantRef>.stride == 4)
        }

        @Test func allocationFlagsAreTheHeadersValues() {
            #expect(DmaBufAllocation.balloon.flags == 0)
            #expect(DmaBufAllocation.contiguousWriteCombined.flags == UInt32(GNTDEV_DMA_FLAG_WC))
            #expect(DmaBufAllocation.contiguousCoherent.flags == UInt32(GNTDEV_DMA_FLAG_COHERENT))
            #expect(GNTDEV_DMA_FLAG_WC == 1 && GNTDEV_DMA_FLAG_COHERENT == 2)
        }
    }
}

extension Simulated.Layout {
    /// SharedPages releases with gntdev's unmap struct: the two must stay the same layout.
    @Test func gntallocDeallocHasTheLayoutOfGntdevUnmap() {
        #expect(MemoryLayout<ioctl_gntalloc_dealloc_gref>.size == MemoryLayout<ioctl_gntdev_unmap_grant_ref>.size)
        #expect(
            MemoryLayout<ioctl_gntalloc_dealloc_gref>.offset(of: \.index)
                == MemoryLayout<ioctl_gntdev_unmap_grant_ref>.offset(of: \.index)
        )
        #expect(
            MemoryLayout<ioctl_gntalloc_dealloc_gref>.offset(of: \.count)
                == MemoryLayout<ioctl_gntdev_unmap_grant_ref>.offset(of: \.count)
        )
    }
}
