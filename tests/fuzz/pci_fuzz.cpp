// libFuzzer target for the guest-visible PCI bus with a virtio-pci function
// (kernel/vdev/pci_bus.cpp, pci_function.cpp, msix_table.cpp,
// kernel/virtio/virtio_pci.cpp) over a fake device, with ASan and UBSan.
// The input is a sequence of 12-byte operations: port I/O to 0xCF8-0xCFF
// (and beyond), configuration cycles to chosen slots, MMIO reads and writes of
// every width at offsets inside and around the BARs, interrupts from the
// device, and bus resets. Besides memory errors it traps on broken invariants:
// absent functions read all-ones, results fit the access width, an MMIO access
// is claimed exactly when a decoded BAR contains it, ISR status clears on
// read, the device only ever sees in-bounds calls, and no more MSI messages
// leave than interrupts were raised.
//
// Built and run by tests/fuzz/CMakeLists.txt (ctest fuzz.pci).

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <new>

#include "kernel/vdev/pci_bus.hpp"
#include "kernel/virtio/virtio_pci.hpp"

namespace {

using hv::vdev::access_mask;
using hv::vdev::PciBus;
using hv::virtio::VirtioPci;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

uint8_t g_ram[1 << 16];

class FuzzDevice final : public hv::virtio::Device {
  public:
    uint16_t device_id() const override { return 1; }
    uint64_t offered_features() const override { return hv::virtio::VIRTIO_F_VERSION_1 | (1ull << 5); }
    uint16_t queue_count() const override { return 2; }
    uint16_t queue_max_size(uint16_t q) const override {
        check(q < 2);
        return 64;
    }
    uint32_t config_size() const override { return sizeof config_; }
    uint32_t read_config(uint32_t off, uint32_t width) override {
        check((width == 1 || width == 2 || width == 4) && off + width <= sizeof config_);
        uint32_t v = 0;
        memcpy(&v, config_ + off, width);
        return v;
    }
    void write_config(uint32_t off, uint32_t width, uint32_t value) override {
        check((width == 1 || width == 2 || width == 4) && off + width <= sizeof config_);
        memcpy(config_ + off, &value, width);
    }
    bool accept_features(uint64_t f) override { return (f & 1) == 0; }
    void start() override {
        check(!running_);
        running_ = true;
    }
    void stop() override {
        check(running_);
        running_ = false;
    }
    void queue_notify(uint16_t q) override { check(q < queue_count()); }

  private:
    uint8_t config_[12] = {0x52, 0x54, 0, 1, 2, 3, 1, 0, 1, 0, 0xdc, 0x05};
    bool running_ = false;
};

class CountingSink final : public hv::vdev::MsiSink {
  public:
    void send_msi(uint64_t, uint32_t) override { ++sent; }
    uint64_t sent = 0;
};

constexpr unsigned kWidths[8] = {1, 2, 4, 8, 1, 2, 4, 3};
constexpr unsigned kVirtioSlot = 1;
constexpr uint64_t kWindow = 0xe0000000;

bool claimed_by_ranges(PciBus& bus, uint64_t gpa) {
    hv::vdev::PciDecodedRange r[8];
    const size_t n = bus.decoded_ranges(r, 8);
    check(n <= 8);
    for (size_t i = 0; i < n; ++i)
        if (gpa >= r[i].base && gpa - r[i].base < r[i].size) return true;
    return false;
}

uint64_t load64(const uint8_t* p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzDevice dev;
    CountingSink sink;
    VirtioPci vp(dev, &sink);
    PciBus bus(kWindow, 256ull << 20);
    dev.attach(hv::guest::GuestMemory(g_ram, sizeof g_ram), &vp);
    check(bus.attach(kVirtioSlot, vp).ok());
    uint64_t raised = 0;

    for (size_t at = 0; at + 12 <= size; at += 12) {
        const uint8_t* op = data + at;
        const unsigned width = kWidths[op[1] & 7];
        const uint16_t sel = static_cast<uint16_t>(op[2] | op[3] << 8);
        const uint64_t value = load64(op + 4);
        switch (op[0] % 8) {
            case 0:  // port write around 0xCF8
                bus.io_write(static_cast<uint16_t>(0xcf8 + (sel & 0xf)), width, static_cast<uint32_t>(value));
                break;
            case 1: {  // port read around 0xCF8
                const uint32_t v = bus.io_read(static_cast<uint16_t>(0xcf8 + (sel & 0xf)), width);
                if (width <= 4 && width != 3) check(v <= access_mask(width));
                break;
            }
            case 2:
            case 3: {  // configuration cycle: slot 0, the virtio slot, or any
                const unsigned slot = (sel >> 13) == 0 ? 0 : (sel >> 13) < 5 ? kVirtioSlot : (sel >> 8) & 0x1f;
                const unsigned func = (op[1] & 0x80) ? (op[1] >> 4) & 7 : 0;
                const unsigned busno = (op[1] & 0x08) ? op[3] : 0;
                const unsigned reg = sel & 0xff;
                const unsigned w = width == 8 ? 4 : width;
                const uint32_t addr = 0x80000000u | busno << 16 | slot << 11 | func << 8 | (reg & 0xfc);
                bus.io_write(0xcf8, 4, addr);
                const auto port = static_cast<uint16_t>(0xcfc + (reg & 3));
                if (op[0] % 8 == 2) {
                    bus.io_write(port, w, static_cast<uint32_t>(value));
                } else {
                    const uint32_t v = bus.io_read(port, w);
                    const bool absent = busno != 0 || func != 0 || (slot != 0 && slot != kVirtioSlot);
                    if (w != 3) {
                        check(v <= access_mask(w));
                        if (absent || (reg & 3) + w > 4) check(v == access_mask(w));
                    }
                }
                break;
            }
            case 4:
            case 5: {  // MMIO at the virtio BAR (+ a little beyond) or anywhere
                uint64_t gpa;
                if (op[1] & 0x40)
                    gpa = value;
                else
                    gpa = vp.bar_address(VirtioPci::kBar) + (sel & 0x9fff);
                const bool expect = hv::vdev::valid_access_width(width) && claimed_by_ranges(bus, gpa);
                if (op[0] % 8 == 4) {
                    check(bus.mmio_write(gpa, width, value) == expect);
                } else {
                    uint64_t v = 0;
                    check(bus.mmio_read(gpa, width, &v) == expect);
                    if (expect) check(v <= access_mask(width));
                    // §4.1.4.5: a second ISR read right after the first sees 0.
                    if (expect && width == 1 && gpa == vp.bar_address(VirtioPci::kBar) + VirtioPci::kIsrOffset) {
                        check(bus.mmio_read(gpa, 1, &v) && v == 0);
                    }
                }
                break;
            }
            case 6:
                ++raised;
                if (op[1] & 1)
                    vp.interrupt_config();
                else
                    vp.interrupt_queue(static_cast<uint16_t>(sel % 4));  // 2 and 3 do not exist
                break;
            case 7:
                if (op[1] == 0xa5) bus.reset();
                break;
        }
        // Each message consumed one interrupt (directly or through its pending
        // bit); the device core raises config interrupts when it breaks.
        uint64_t broken = 0;
        for (size_t r = 0; r < static_cast<size_t>(hv::virtio::BrokenReason::count); ++r)
            broken += dev.broken_count(static_cast<hv::virtio::BrokenReason>(r));
        check(sink.sent == vp.msi_sent());
        check(sink.sent <= raised + broken);
    }

    // The host bridge's identity survives anything.
    bus.io_write(0xcf8, 4, 0x80000000u);
    check(bus.io_read(0xcfc, 4) == 0x00081b36u);
    bus.io_write(0xcf8, 4, 0x80000000u | kVirtioSlot << 11);
    check(bus.io_read(0xcfc, 4) == 0x10411af4u);
    return 0;
}
