// The virtio-pci modern transport (virtio 1.2 §4.1) on the PCI bus, driven
// the way Linux's virtio_pci_modern_dev.c / virtio_pci_common.c drive it,
// against a fake device.
#include "kernel/virtio/virtio_pci.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "kernel/vdev/pci_bus.hpp"

using namespace hv::virtio;
using hv::vdev::MsiSink;
using hv::vdev::PciBus;
namespace pci = hv::vdev::pci;

namespace {

constexpr uint64_t kWindow = 0xe0000000;
constexpr unsigned kSlot = 1;

class FakeNet final : public Device {
  public:
    uint16_t device_id() const override { return 1; }
    uint64_t offered_features() const override { return kOffered; }
    uint16_t queue_count() const override { return 2; }
    uint16_t queue_max_size(uint16_t) const override { return 256; }
    uint32_t config_size() const override { return sizeof(config); }
    uint32_t read_config(uint32_t off, uint32_t width) override {
        EXPECT_TRUE(width == 1 || width == 2 || width == 4);
        EXPECT_LE(off + width, sizeof(config));
        uint32_t v = 0;
        for (uint32_t i = 0; i < width; ++i) v |= uint32_t{config[off + i]} << (8 * i);
        return v;
    }
    void write_config(uint32_t off, uint32_t width, uint32_t value) override {
        EXPECT_LE(off + width, sizeof(config));
        config_writes.push_back({off, width, value});
    }
    bool accept_features(uint64_t) override { return true; }
    void start() override { ++starts; }
    void stop() override { ++stops; }
    void queue_notify(uint16_t q) override {
        EXPECT_LT(q, queue_count());
        notifies.push_back(q);
    }

    static constexpr uint64_t kOffered = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX | (1ull << 5) | (1ull << 16);
    // virtio-net config (§5.1.4): mac, status, max_virtqueue_pairs, mtu.
    uint8_t config[12] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x01, 0x00, 0x01, 0x00, 0xdc, 0x05};
    struct Write {
        uint32_t off, width, value;
    };
    std::vector<Write> config_writes;
    std::vector<uint16_t> notifies;
    int starts = 0, stops = 0;
};

class RecordingSink final : public MsiSink {
  public:
    void send_msi(uint64_t address, uint32_t data) override { sent.push_back({address, data}); }
    std::vector<std::pair<uint64_t, uint32_t>> sent;
};

constexpr uint32_t kCommon = VirtioPci::kCommonOffset;
#define COMMON(field) (kCommon + offsetof(VirtioPciCommonCfg, field))

class VirtioPciTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dev.attach(hv::guest::GuestMemory(ram.data(), ram.size()), &vp);
        ASSERT_TRUE(bus.attach(kSlot, vp).ok());
        cfg_write(pci::COMMAND, 2, pci::COMMAND_MEMORY | pci::COMMAND_MASTER);
        bar = cfg_read(pci::BASE_ADDRESS_0, 4) & ~0xfu;
    }

    uint32_t cfg_read(unsigned reg, unsigned width) {
        bus.io_write(0xcf8, 4, 0x80000000u | kSlot << 11 | (reg & 0xfc));
        return bus.io_read(static_cast<uint16_t>(0xcfc + (reg & 3)), width);
    }
    void cfg_write(unsigned reg, unsigned width, uint32_t v) {
        bus.io_write(0xcf8, 4, 0x80000000u | kSlot << 11 | (reg & 0xfc));
        bus.io_write(static_cast<uint16_t>(0xcfc + (reg & 3)), width, v);
    }
    uint64_t rd(uint32_t off, unsigned width) {
        uint64_t v = 0xbad;
        EXPECT_TRUE(bus.mmio_read(bar + off, width, &v)) << std::hex << off;
        return v;
    }
    void wr(uint32_t off, unsigned width, uint64_t v) { EXPECT_TRUE(bus.mmio_write(bar + off, width, v)) << off; }

    // MSI-X table entry v: address 0xfee00000 | v << 12, data 0x40 + v.
    void program_vector(uint16_t v, bool masked) {
        const uint32_t e = VirtioPci::kMsixTableOffset + 16u * v;
        wr(e + 0, 4, 0xfee00000u | v << 12);
        wr(e + 4, 4, 0);
        wr(e + 8, 4, 0x40u + v);
        wr(e + 12, 4, masked ? 1 : 0);
    }
    void set_msix_control(uint16_t bits) { cfg_write(vp.msix_cap_offset() + 2, 2, bits); }

    std::vector<uint8_t> ram = std::vector<uint8_t>(1 << 20);
    FakeNet dev;
    RecordingSink sink;
    VirtioPci vp{dev, &sink};
    PciBus bus{kWindow, 256ull << 20};
    uint64_t bar = 0;
};

TEST_F(VirtioPciTest, IdentityIsAModernVirtioNetDevice) {
    EXPECT_EQ(cfg_read(pci::VENDOR_ID, 2), 0x1af4u);
    EXPECT_EQ(cfg_read(pci::DEVICE_ID, 2), 0x1041u);  // §4.1.2: 0x1040 + 1
    EXPECT_EQ(cfg_read(pci::REVISION_ID, 1), 1u);
    EXPECT_EQ(cfg_read(pci::SUBSYSTEM_VENDOR_ID, 2), 0x1af4u);
    EXPECT_EQ(cfg_read(pci::SUBSYSTEM_ID, 2), 1u);
    EXPECT_EQ(cfg_read(pci::REVISION_ID, 4) >> 8, 0x020000u);  // Ethernet controller
    EXPECT_EQ(cfg_read(pci::HEADER_TYPE, 1), 0u);
    EXPECT_NE(cfg_read(pci::STATUS, 2) & pci::STATUS_CAP_LIST, 0u);
    EXPECT_EQ(cfg_read(pci::INTERRUPT_PIN, 1), 0u);
    // BAR 0: 32-bit, non-prefetchable, 32 KiB.
    EXPECT_EQ(cfg_read(pci::BASE_ADDRESS_0, 4) & 0xf, 0u);
    cfg_write(pci::BASE_ADDRESS_0, 4, 0xffffffffu);
    EXPECT_EQ(cfg_read(pci::BASE_ADDRESS_0, 4), ~(VirtioPci::kBarSize - 1));
    cfg_write(pci::BASE_ADDRESS_0, 4, static_cast<uint32_t>(bar));
}

// virtio_pci_find_capability() + vp_modern_map_capability() + the MSI-X
// table/PBA mapping of msix_capability_init(): walk the list, take the first
// vendor capability of each type, check what Linux checks.
TEST_F(VirtioPciTest, CapabilityWalkAsLinuxModernProbe) {
    struct Found {
        unsigned pos, bar, off, len;
    };
    std::map<unsigned, Found> caps;
    unsigned msix = 0, steps = 0;
    std::vector<std::pair<unsigned, unsigned>> spans;
    for (unsigned pos = cfg_read(pci::CAPABILITY_LIST, 1) & ~3u; pos != 0; pos = cfg_read(pos + 1, 1) & ~3u) {
        ASSERT_LT(++steps, 48u) << "capability list loops";
        ASSERT_GE(pos, 0x40u);
        const unsigned id = cfg_read(pos, 1);
        const unsigned len = id == 0x09 ? cfg_read(pos + 2, 1) : 12;
        ASSERT_LE(pos + len, 256u);
        for (auto& s : spans) EXPECT_TRUE(pos + len <= s.first || s.first + s.second <= pos) << "overlap at " << pos;
        spans.push_back({pos, len});
        if (id == hv::vdev::PCI_CAP_ID_MSIX) msix = pos;
        if (id != 0x09) continue;
        const unsigned type = cfg_read(pos + 3, 1);
        if (caps.count(type)) continue;  // Linux takes the first of each type
        caps[type] = Found{pos, cfg_read(pos + 4, 1), cfg_read(pos + 8, 4), cfg_read(pos + 12, 4)};
    }
    for (unsigned type = 1; type <= 5; ++type) ASSERT_TRUE(caps.count(type)) << "cfg_type " << type;
    struct Rule {
        unsigned type, minlen, align;
    };
    // vp_modern_probe(): common at least sizeof(struct virtio_pci_common_cfg)
    // (0x38; 0x3c with the 1.2 fields), align 4; ISR 1/1; notify 2/2; device
    // length > 0, align 4.
    for (Rule r : {Rule{1, 0x3c, 4}, Rule{3, 1, 1}, Rule{2, 2, 2}, Rule{4, 1, 4}}) {
        const Found& f = caps[r.type];
        EXPECT_EQ(f.bar, 0u) << r.type;
        EXPECT_GE(f.len, r.minlen) << r.type;
        EXPECT_EQ(f.off % r.align, 0u) << r.type;
        EXPECT_LE(uint64_t{f.off} + f.len, VirtioPci::kBarSize) << r.type;
    }
    EXPECT_EQ(caps[4].len, sizeof(dev.config));
    // Notify: every queue's address + 2 inside the mapped length.
    const Found& n = caps[2];
    const uint32_t mult = cfg_read(n.pos + 16, 4);
    EXPECT_EQ(mult, VirtioPci::kNotifyOffMultiplier);
    wr(COMMON(queue_select), 2, 1);
    const uint64_t last_off = rd(COMMON(queue_notify_off), 2);
    EXPECT_LE(last_off * mult + 2, n.len);
    EXPECT_EQ(cfg_read(caps[5].pos + 2, 1), sizeof(VirtioPciCfgCap));
    // MSI-X: queue_count() + 1 entries; table and PBA in BAR 0.
    ASSERT_NE(msix, 0u);
    EXPECT_EQ(msix, vp.msix_cap_offset());
    const unsigned entries = (cfg_read(msix + 2, 2) & 0x7ff) + 1;
    EXPECT_EQ(entries, 3u);
    const uint32_t table = cfg_read(msix + 4, 4), pba = cfg_read(msix + 8, 4);
    EXPECT_EQ(table & 7, 0u);
    EXPECT_EQ(pba & 7, 0u);
    EXPECT_LE((table & ~7u) + entries * 16, VirtioPci::kBarSize);
    EXPECT_LE((pba & ~7u) + 8, VirtioPci::kBarSize);
    // PCI 3.0 §6.8.2: MSI-X structures do not share a 4 KiB page with the virtio ones.
    for (auto& [type, f] : caps) {
        if (type == 5) continue;
        EXPECT_NE(f.off / 4096, (table & ~7u) / 4096);
        EXPECT_NE(f.off / 4096, (pba & ~7u) / 4096);
    }
}

// The order of virtio_dev_probe() + vp_modern_find_vqs() + virtnet_probe().
TEST_F(VirtioPciTest, FullDriverInitSequence) {
    wr(COMMON(device_status), 1, 0);
    EXPECT_EQ(rd(COMMON(device_status), 1), 0u);  // §4.1.4.3.2: reads 0 once reset
    wr(COMMON(device_status), 1, ACKNOWLEDGE);
    wr(COMMON(device_status), 1, ACKNOWLEDGE | DRIVER);
    wr(COMMON(device_feature_select), 4, 0);
    uint64_t features = rd(COMMON(device_feature), 4);
    wr(COMMON(device_feature_select), 4, 1);
    features |= rd(COMMON(device_feature), 4) << 32;
    EXPECT_EQ(features, FakeNet::kOffered);
    const uint64_t want = VIRTIO_F_VERSION_1 | (1ull << 5);
    wr(COMMON(driver_feature_select), 4, 0);
    wr(COMMON(driver_feature), 4, want & 0xffffffff);
    wr(COMMON(driver_feature_select), 4, 1);
    wr(COMMON(driver_feature), 4, want >> 32);
    wr(COMMON(device_status), 1, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    EXPECT_EQ(rd(COMMON(device_status), 1) & FEATURES_OK, FEATURES_OK);
    EXPECT_EQ(dev.driver_features(), want);

    // MSI-X as pci_alloc_irq_vectors() sets it up: enable with the function
    // masked, mask every entry, then clear the function mask.
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE | hv::vdev::MSIX_CONTROL_FUNCTION_MASK);
    for (uint16_t v = 0; v < 3; ++v) program_vector(v, true);
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
    wr(COMMON(config_msix_vector), 2, 0);
    EXPECT_EQ(rd(COMMON(config_msix_vector), 2), 0u);

    EXPECT_EQ(rd(COMMON(num_queues), 2), 2u);
    for (uint16_t q = 0; q < 2; ++q) {
        wr(COMMON(queue_select), 2, q);
        EXPECT_EQ(rd(COMMON(queue_size), 2), 256u);
        EXPECT_EQ(rd(COMMON(queue_enable), 2), 0u);
        wr(COMMON(queue_size), 2, 128);
        const uint64_t base = 0x10000 + q * 0x4000;
        wr(COMMON(queue_desc_lo), 4, base);
        wr(COMMON(queue_desc_hi), 4, 0);
        wr(COMMON(queue_driver_lo), 4, base + 0x800);
        wr(COMMON(queue_driver_hi), 4, 0);
        wr(COMMON(queue_device_lo), 4, base + 0x1000);
        wr(COMMON(queue_device_hi), 4, 0);
        wr(COMMON(queue_msix_vector), 2, q + 1);
        EXPECT_EQ(rd(COMMON(queue_msix_vector), 2), q + 1u);
        EXPECT_EQ(rd(COMMON(queue_notify_off), 2), q);
    }
    for (uint16_t q = 0; q < 2; ++q) {
        wr(COMMON(queue_select), 2, q);
        wr(COMMON(queue_enable), 2, 1);
        EXPECT_EQ(rd(COMMON(queue_enable), 2), 1u);
    }
    // virtnet reads its configuration before DRIVER_OK.
    for (unsigned i = 0; i < 6; ++i) EXPECT_EQ(rd(VirtioPci::kDeviceOffset + i, 1), dev.config[i]);
    EXPECT_EQ(rd(VirtioPci::kDeviceOffset + 10, 2), 1500u);
    wr(COMMON(device_status), 1, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    EXPECT_EQ(rd(COMMON(device_status), 1), 0x0fu);
    EXPECT_EQ(dev.starts, 1);
    const QueueConfig q1 = dev.queue(1);
    EXPECT_TRUE(q1.enabled);
    EXPECT_EQ(q1.size, 128);
    EXPECT_EQ(q1.desc, 0x14000u);
    EXPECT_EQ(q1.driver, 0x14800u);
    EXPECT_EQ(q1.device, 0x15000u);

    // The device interrupts queue 1: entry 2 is masked, so it is pending...
    vp.interrupt_queue(1);
    EXPECT_TRUE(sink.sent.empty());
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 1u << 2);
    // ...until request_irq() unmasks it.
    wr(VirtioPci::kMsixTableOffset + 2 * 16 + 12, 4, 0);
    ASSERT_EQ(sink.sent.size(), 1u);
    EXPECT_EQ(sink.sent[0], (std::pair<uint64_t, uint32_t>{0xfee02000u, 0x42}));
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 0u);
    EXPECT_EQ(vp.ignored_accesses(), 0u);
}

TEST_F(VirtioPciTest, FeatureHalvesAndSelectors) {
    const struct {
        uint32_t select;
        uint32_t value;
    } cases[] = {{0, static_cast<uint32_t>(FakeNet::kOffered)}, {1, FakeNet::kOffered >> 32}, {2, 0}, {0xffffffffu, 0}};
    for (auto c : cases) {
        wr(COMMON(device_feature_select), 4, c.select);
        EXPECT_EQ(rd(COMMON(device_feature_select), 4), c.select);
        EXPECT_EQ(rd(COMMON(device_feature), 4), c.value) << c.select;
    }
    wr(COMMON(driver_feature_select), 4, 1);
    wr(COMMON(driver_feature), 4, 1);  // VERSION_1
    wr(COMMON(driver_feature_select), 4, 0);
    wr(COMMON(driver_feature), 4, 1u << 5);  // MAC; the high half stays
    EXPECT_EQ(dev.driver_features(), VIRTIO_F_VERSION_1 | (1ull << 5));
    EXPECT_EQ(rd(COMMON(driver_feature), 4), 1u << 5);
    const uint64_t ignored = vp.ignored_accesses();
    wr(COMMON(driver_feature_select), 4, 2);
    wr(COMMON(driver_feature), 4, 0xffffffffu);  // no third half
    EXPECT_EQ(rd(COMMON(driver_feature), 4), 0u);
    wr(COMMON(device_feature), 4, 0);  // read-only
    EXPECT_EQ(vp.ignored_accesses(), ignored + 2);
    EXPECT_EQ(dev.driver_features(), VIRTIO_F_VERSION_1 | (1ull << 5));
}

TEST_F(VirtioPciTest, QueueFieldsAcceptHalvesAndWholeQwords) {
    wr(COMMON(queue_select), 2, 0);
    wr(COMMON(queue_desc_lo), 8, 0x0000000100002000ull);
    EXPECT_EQ(dev.queue(0).desc, 0x100002000ull);
    EXPECT_EQ(rd(COMMON(queue_desc_lo), 8), 0x100002000ull);
    EXPECT_EQ(rd(COMMON(queue_desc_hi), 4), 1u);
    wr(COMMON(queue_desc_hi), 4, 0);
    EXPECT_EQ(dev.queue(0).desc, 0x2000u);
    wr(COMMON(queue_device_lo), 8, 0x3000);
    EXPECT_EQ(dev.queue(0).device, 0x3000u);
    // An 8-byte access at the high half is misaligned for the field.
    const uint64_t ignored = vp.ignored_accesses();
    wr(COMMON(queue_desc_hi), 8, ~0ull);
    EXPECT_EQ(dev.queue(0).desc, 0x2000u);
    EXPECT_EQ(vp.ignored_accesses(), ignored + 1);
}

TEST_F(VirtioPciTest, OutOfRangeQueueSelectReadsZeroSize) {
    for (uint16_t q : {uint16_t{2}, uint16_t{8}, uint16_t{0xffff}}) {
        wr(COMMON(queue_select), 2, q);
        EXPECT_EQ(rd(COMMON(queue_select), 2), q);
        EXPECT_EQ(rd(COMMON(queue_size), 2), 0u);  // §4.1.4.3: 0 = not available
        EXPECT_EQ(rd(COMMON(queue_enable), 2), 0u);
        EXPECT_EQ(rd(COMMON(queue_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
        EXPECT_EQ(rd(COMMON(queue_desc_lo), 8), 0u);
        const uint64_t ignored = vp.ignored_accesses();
        wr(COMMON(queue_size), 2, 64);
        wr(COMMON(queue_enable), 2, 1);
        wr(COMMON(queue_msix_vector), 2, 0);
        EXPECT_EQ(vp.ignored_accesses(), ignored + 3);
    }
    EXPECT_EQ(dev.queue(0).size, 0u);
    EXPECT_EQ(dev.queue(1).size, 0u);
}

TEST_F(VirtioPciTest, QueueEnableTakesTheMaximumWhenSizeWasNotWritten) {
    wr(COMMON(queue_select), 2, 1);
    wr(COMMON(queue_enable), 2, 1);
    EXPECT_TRUE(dev.queue(1).enabled);
    EXPECT_EQ(dev.queue(1).size, 256);
    EXPECT_EQ(rd(COMMON(queue_size), 2), 256u);
    // Once enabled, the queue configuration is frozen (counted by the device).
    const uint64_t refused = dev.ignored_writes();
    wr(COMMON(queue_size), 2, 64);
    EXPECT_EQ(dev.queue(1).size, 256);
    EXPECT_EQ(dev.ignored_writes(), refused + 1);
}

// §2.7: a split queue's size is a power of 2 no larger than the maximum.
TEST_F(VirtioPciTest, EnablingAQueueWithABadSizeBreaksTheDevice) {
    for (uint16_t size : {uint16_t{100}, uint16_t{512}, uint16_t{3}}) {
        wr(COMMON(device_status), 1, 0);
        set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
        program_vector(0, false);
        wr(COMMON(config_msix_vector), 2, 0);
        sink.sent.clear();
        wr(COMMON(queue_select), 2, 0);
        wr(COMMON(queue_size), 2, size);
        wr(COMMON(queue_enable), 2, 1);
        EXPECT_FALSE(dev.queue(0).enabled) << size;
        EXPECT_NE(rd(COMMON(device_status), 1) & DEVICE_NEEDS_RESET, 0u) << size;
        EXPECT_EQ(dev.broken_reason(), BrokenReason::bad_queue_config);
        EXPECT_EQ(sink.sent.size(), 1u);  // the config-change interrupt
        EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), VIRTIO_PCI_ISR_CONFIG);
    }
}

TEST_F(VirtioPciTest, NotifyReachesTheDeviceWithTheRightQueue) {
    wr(VirtioPci::kNotifyOffset + 0, 2, 0);
    wr(VirtioPci::kNotifyOffset + 4, 2, 1);
    wr(VirtioPci::kNotifyOffset + 4, 4, 1);  // 32-bit notification data form
    EXPECT_EQ(dev.notifies, (std::vector<uint16_t>{0, 1, 1}));
    const uint64_t ignored = vp.ignored_accesses();
    wr(VirtioPci::kNotifyOffset + 8, 2, 2);          // queue 2 does not exist
    wr(VirtioPci::kNotifyOffset + 2, 2, 0);          // not a queue's address
    wr(VirtioPci::kNotifyOffset + 0, 1, 0);          // byte
    wr(VirtioPci::kNotifyOffset + 0, 8, 0);          // qword
    EXPECT_EQ(rd(VirtioPci::kNotifyOffset, 2), 0u);  // write-only
    EXPECT_EQ(dev.notifies.size(), 3u);
    EXPECT_EQ(vp.ignored_accesses(), ignored + 5);
}

TEST_F(VirtioPciTest, MaskedEntryPendsAndUnmaskDeliversExactlyOnce) {
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
    program_vector(1, true);
    wr(COMMON(queue_select), 2, 0);
    wr(COMMON(queue_msix_vector), 2, 1);
    vp.interrupt_queue(0);
    vp.interrupt_queue(0);  // coalesces into the one pending bit
    EXPECT_TRUE(sink.sent.empty());
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 4), 2u);
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 16 + 12, 4), 1u);
    wr(VirtioPci::kMsixTableOffset + 16 + 12, 4, 0);
    ASSERT_EQ(sink.sent.size(), 1u);
    EXPECT_EQ(sink.sent[0].first, 0xfee01000u);
    EXPECT_EQ(sink.sent[0].second, 0x41u);
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 4), 0u);
    wr(VirtioPci::kMsixTableOffset + 16 + 12, 4, 0);  // unmasked again: nothing pending, nothing sent
    EXPECT_EQ(sink.sent.size(), 1u);
    vp.interrupt_queue(0);  // unmasked: straight out
    EXPECT_EQ(sink.sent.size(), 2u);
    EXPECT_EQ(vp.msi_sent(), 2u);
}

TEST_F(VirtioPciTest, FunctionMaskPendsAndClearingItDelivers) {
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE | hv::vdev::MSIX_CONTROL_FUNCTION_MASK);
    program_vector(0, false);
    wr(COMMON(config_msix_vector), 2, 0);
    vp.interrupt_config();
    EXPECT_TRUE(sink.sent.empty());
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 1u);
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
    ASSERT_EQ(sink.sent.size(), 1u);
    EXPECT_EQ(sink.sent[0].second, 0x40u);
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
    EXPECT_EQ(sink.sent.size(), 1u);
}

TEST_F(VirtioPciTest, BusMasterOffHoldsMessagesPending) {
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
    program_vector(0, false);
    wr(COMMON(config_msix_vector), 2, 0);
    cfg_write(pci::COMMAND, 2, pci::COMMAND_MEMORY);
    vp.interrupt_config();
    EXPECT_TRUE(sink.sent.empty());
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 1u);
    cfg_write(pci::COMMAND, 2, pci::COMMAND_MEMORY | pci::COMMAND_MASTER);
    EXPECT_EQ(sink.sent.size(), 1u);
}

TEST_F(VirtioPciTest, MsixDisabledOnlySetsIsr) {
    program_vector(0, false);
    wr(COMMON(config_msix_vector), 2, 0);
    vp.interrupt_config();
    vp.interrupt_queue(1);
    EXPECT_TRUE(sink.sent.empty());
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 0u);
    EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), VIRTIO_PCI_ISR_CONFIG | VIRTIO_PCI_ISR_QUEUE);
}

TEST_F(VirtioPciTest, VectorsBeyondTheTableReadNoVector) {
    // Table size 3: vectors 0..2.
    const struct {
        uint16_t write, read;
    } cases[] = {{0, 0}, {2, 2}, {3, VIRTIO_MSI_NO_VECTOR}, {0x7ff, VIRTIO_MSI_NO_VECTOR}, {0xffff, 0xffff}};
    for (auto c : cases) {
        wr(COMMON(config_msix_vector), 2, c.write);
        EXPECT_EQ(rd(COMMON(config_msix_vector), 2), c.read) << c.write;
        wr(COMMON(queue_select), 2, 1);
        wr(COMMON(queue_msix_vector), 2, c.write);
        EXPECT_EQ(rd(COMMON(queue_msix_vector), 2), c.read) << c.write;
    }
    // NO_VECTOR: enabled MSI-X, but nothing is sent or pended.
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
    vp.interrupt_queue(1);
    EXPECT_TRUE(sink.sent.empty());
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 0u);
}

TEST_F(VirtioPciTest, IsrReadClearsAndWrongWidthsDoNot) {
    vp.interrupt_queue(0);
    const uint64_t ignored = vp.ignored_accesses();
    EXPECT_EQ(rd(VirtioPci::kIsrOffset, 2), 0u);
    EXPECT_EQ(rd(VirtioPci::kIsrOffset, 4), 0u);
    wr(VirtioPci::kIsrOffset, 1, 0);
    EXPECT_EQ(vp.ignored_accesses(), ignored + 3);
    EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), VIRTIO_PCI_ISR_QUEUE);
    EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), 0u);
    vp.interrupt_config();
    EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), VIRTIO_PCI_ISR_CONFIG);
    vp.interrupt_queue(7);  // no such queue: nothing
    EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), 0u);
}

TEST_F(VirtioPciTest, DeviceConfigWindowChecksBoundsAndWidths) {
    EXPECT_EQ(rd(VirtioPci::kDeviceOffset + 0, 4), 0x12005452u);
    EXPECT_EQ(rd(VirtioPci::kDeviceOffset + 6, 2), 1u);
    EXPECT_EQ(rd(VirtioPci::kDeviceOffset + 8, 4), 0x05dc0001u);
    struct Bad {
        uint32_t off;
        unsigned width;
    };
    const uint64_t ignored = vp.ignored_accesses();
    const Bad bad[] = {{12, 1}, {11, 2}, {10, 4}, {1, 2}, {2, 4}, {0, 8}, {0xffc, 4}, {0xfff, 2}};
    for (Bad b : bad) {
        EXPECT_EQ(rd(VirtioPci::kDeviceOffset + b.off, b.width), 0u) << b.off << "/" << b.width;
        wr(VirtioPci::kDeviceOffset + b.off, b.width, 0xff);
    }
    EXPECT_EQ(vp.ignored_accesses(), ignored + 2 * std::size(bad));
    EXPECT_TRUE(dev.config_writes.empty());
    wr(VirtioPci::kDeviceOffset + 6, 2, 0x1234);
    ASSERT_EQ(dev.config_writes.size(), 1u);
    EXPECT_EQ(dev.config_writes[0].off, 6u);
    EXPECT_EQ(dev.config_writes[0].width, 2u);
    EXPECT_EQ(dev.config_writes[0].value, 0x1234u);
}

// §4.1.3.1: each common field only at its own offset and width.
TEST_F(VirtioPciTest, WrongWidthCommonAccessesAreIgnoredAndCounted) {
    struct Bad {
        uint32_t off;
        unsigned width;
    };
    const Bad bad[] = {
        {0x00, 2}, {0x01, 1}, {0x02, 4}, {0x10, 4}, {0x14, 2}, {0x14, 4}, {0x15, 2}, {0x16, 1},
        {0x17, 1}, {0x18, 4}, {0x20, 2}, {0x22, 4}, {0x24, 8}, {0x3c, 4}, {0x40, 1}, {0xffc, 4},
    };
    const uint64_t ignored = vp.ignored_accesses();
    for (Bad b : bad) {
        EXPECT_EQ(rd(b.off, b.width), 0u) << b.off << "/" << b.width;
        wr(b.off, b.width, ~0ull);
    }
    EXPECT_EQ(vp.ignored_accesses(), ignored + 2 * std::size(bad));
    EXPECT_EQ(dev.status(), 0u);
    EXPECT_EQ(rd(COMMON(device_feature_select), 4), 0u);
    EXPECT_EQ(rd(COMMON(queue_select), 2), 0u);
    EXPECT_EQ(dev.queue(0).desc, 0u);
}

TEST_F(VirtioPciTest, ResetClearsTransportStateButNotTheMsixTable) {
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
    program_vector(1, true);
    wr(COMMON(device_feature_select), 4, 1);
    wr(COMMON(driver_feature_select), 4, 1);
    wr(COMMON(queue_select), 2, 1);
    wr(COMMON(queue_msix_vector), 2, 1);
    wr(COMMON(config_msix_vector), 2, 2);
    wr(COMMON(device_status), 1, ACKNOWLEDGE);
    vp.interrupt_queue(1);  // pending on masked vector 1
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 2u);

    wr(COMMON(device_status), 1, 0);
    EXPECT_EQ(dev.status(), 0u);
    EXPECT_EQ(rd(COMMON(device_feature_select), 4), 0u);
    EXPECT_EQ(rd(COMMON(driver_feature_select), 4), 0u);
    EXPECT_EQ(rd(COMMON(queue_select), 2), 0u);
    EXPECT_EQ(rd(COMMON(config_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
    wr(COMMON(queue_select), 2, 1);
    EXPECT_EQ(rd(COMMON(queue_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 0u);
    EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), 0u);
    // The MSI-X table and enable belong to PCI, not to the virtio reset.
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 16, 4), 0xfee01000u);
    EXPECT_EQ(cfg_read(vp.msix_cap_offset() + 2, 2) & hv::vdev::MSIX_CONTROL_ENABLE, hv::vdev::MSIX_CONTROL_ENABLE);
    // Unmasking after the reset sends nothing: the pending bit went with it.
    wr(VirtioPci::kMsixTableOffset + 16 + 12, 4, 0);
    EXPECT_TRUE(sink.sent.empty());
}

TEST_F(VirtioPciTest, BusResetRestoresPowerOnState) {
    set_msix_control(hv::vdev::MSIX_CONTROL_ENABLE);
    program_vector(0, false);
    wr(COMMON(device_status), 1, ACKNOWLEDGE);
    bus.reset();
    EXPECT_EQ(dev.status(), 0u);
    EXPECT_EQ(cfg_read(vp.msix_cap_offset() + 2, 2), 2u);  // disabled, table size 3
    EXPECT_EQ(cfg_read(pci::COMMAND, 2), 0u);
    cfg_write(pci::COMMAND, 2, pci::COMMAND_MEMORY);
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 12, 4), 1u);  // masked again
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 0, 4), 0u);
}

TEST_F(VirtioPciTest, MsixTableAndPbaAccessRules) {
    wr(VirtioPci::kMsixTableOffset + 16, 8, 0x00000001fee00003ull);  // address bits 1:0 read 0
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 16, 8), 0x00000001fee00000ull);
    wr(VirtioPci::kMsixTableOffset + 24, 8, 0xffffffff00000055ull);  // reserved control bits read 0
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 24, 8), 0x0000000100000055ull);
    const uint64_t ignored = vp.ignored_accesses();
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 2, 2), 0u);
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 4, 8), 0u);  // misaligned qword
    wr(VirtioPci::kMsixTableOffset + 17, 1, 0);
    wr(VirtioPci::kMsixPbaOffset, 8, ~0ull);  // read-only
    EXPECT_EQ(vp.ignored_accesses(), ignored + 4);
    EXPECT_EQ(rd(VirtioPci::kMsixTableOffset + 3 * 16, 4), 0u);  // past the last entry
    EXPECT_EQ(rd(VirtioPci::kMsixPbaOffset, 8), 0u);
}

// §4.1.4.9: the configuration-space window into BAR 0, usable with memory
// decoding off.
TEST_F(VirtioPciTest, PciCfgWindowReadsAndWritesTheBar) {
    const unsigned c = vp.cap_offset(VIRTIO_PCI_CAP_PCI_CFG);
    ASSERT_NE(c, 0u);
    cfg_write(pci::COMMAND, 2, 0);
    auto window = [&](uint32_t off, uint32_t len) {
        cfg_write(c + 4, 1, 0);
        cfg_write(c + 8, 4, off);
        cfg_write(c + 12, 4, len);
    };
    window(COMMON(num_queues), 2);
    EXPECT_EQ(cfg_read(c + 16, 2), 2u);
    EXPECT_EQ(cfg_read(c + 16, 4) & 0xffff, 2u);
    window(COMMON(device_status), 1);
    cfg_write(c + 16, 1, ACKNOWLEDGE);
    EXPECT_EQ(dev.status(), ACKNOWLEDGE);
    window(VirtioPci::kNotifyOffset + 4, 2);
    cfg_write(c + 16, 2, 1);
    EXPECT_EQ(dev.notifies, (std::vector<uint16_t>{1}));
    vp.interrupt_queue(0);
    window(VirtioPci::kIsrOffset, 1);
    EXPECT_EQ(cfg_read(c + 16, 1), VIRTIO_PCI_ISR_QUEUE);
    EXPECT_EQ(cfg_read(c + 16, 1), 0u);  // read-to-clear through the window too

    const uint64_t ignored = vp.ignored_accesses();
    window(COMMON(num_queues), 3);  // bad length
    (void)cfg_read(c + 16, 4);
    window(COMMON(num_queues) + 1, 2);  // misaligned
    (void)cfg_read(c + 16, 2);
    window(VirtioPci::kBarSize, 4);  // outside the BAR
    cfg_write(c + 16, 4, 0);
    window(COMMON(num_queues), 2);
    cfg_write(c + 4, 1, 1);  // BAR 1 does not exist
    (void)cfg_read(c + 16, 2);
    EXPECT_EQ(vp.ignored_accesses(), ignored + 4);
    // Reading the window's own fields has no side effect.
    EXPECT_EQ(cfg_read(c + 8, 4), COMMON(num_queues));
    EXPECT_EQ(vp.ignored_accesses(), ignored + 4);
}

TEST_F(VirtioPciTest, DeviceWithoutConfigHasNoDeviceCapability) {
    class NoConfig final : public Device {
      public:
        uint16_t device_id() const override { return 4; }  // entropy
        uint64_t offered_features() const override { return VIRTIO_F_VERSION_1; }
        uint16_t queue_count() const override { return 1; }
        uint16_t queue_max_size(uint16_t) const override { return 64; }
        uint32_t config_size() const override { return 0; }
        uint32_t read_config(uint32_t, uint32_t) override {
            ADD_FAILURE();
            return 0;
        }
        void write_config(uint32_t, uint32_t, uint32_t) override { ADD_FAILURE(); }
        bool accept_features(uint64_t) override { return true; }
        void start() override {}
        void stop() override {}
        void queue_notify(uint16_t) override {}
    } nc;
    VirtioPci p(nc, nullptr);
    EXPECT_EQ(p.cap_offset(VIRTIO_PCI_CAP_DEVICE_CFG), 0u);
    EXPECT_NE(p.cap_offset(VIRTIO_PCI_CAP_NOTIFY_CFG), 0u);
    EXPECT_EQ(p.config_read(pci::DEVICE_ID, 2), 0x1044u);
    EXPECT_EQ(p.config_read(pci::REVISION_ID, 4) >> 8, 0xff0000u);
    EXPECT_EQ(p.bar_read(0, VirtioPci::kDeviceOffset, 1), 0u);
    p.interrupt_config();  // no sink: only the ISR bit
    EXPECT_EQ(p.bar_read(0, VirtioPci::kIsrOffset, 1), VIRTIO_PCI_ISR_CONFIG);
}

}  // namespace
