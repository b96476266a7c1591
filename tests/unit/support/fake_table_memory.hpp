#pragma once
// FakeTableMemory: the page-table Memory policy (kernel/mm/page_table.hpp) for
// tests. Zeroed 4 KiB pages from a vector, at fake physical addresses far from
// anything the tests map, so a table page is never mistaken for a mapped page.
// Used by the x86 page-table and the EPT tests.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace hv::test {

class FakeTableMemory {
  public:
    static constexpr uint64_t kBase = 0x00F0'0000'0000ull;
    static constexpr uint64_t kPage = 0x1000;

    explicit FakeTableMemory(size_t max_pages) : words_(max_pages * 512, 0), max_pages_(max_pages) {}

    uint64_t alloc_table() {
        if (allocations_ == max_pages_) return 0;
        return kBase + kPage * allocations_++;
    }

    uint64_t* table(uint64_t phys) {
        if (!owns(phys) || phys % kPage != 0) {
            ADD_FAILURE() << "table() on a page never allocated: 0x" << std::hex << phys;
            std::abort();
        }
        return &words_[(phys - kBase) / sizeof(uint64_t)];
    }

    bool owns(uint64_t phys) const { return phys >= kBase && phys < kBase + kPage * allocations_; }
    size_t allocations() const { return allocations_; }

  private:
    std::vector<uint64_t> words_;
    size_t max_pages_;
    size_t allocations_ = 0;
};

}  // namespace hv::test
