// The transport-neutral virtio device core (kernel/virtio/virtio_device.cpp):
// the §3.1.1 status sequence, feature negotiation and refusal, queue
// configuration checks at DRIVER_OK, broken marking and reset.
#include <gtest/gtest.h>

#include <vector>

#include "kernel/virtio/virtio_device.hpp"

using hv::virtio::ACKNOWLEDGE;
using hv::virtio::BrokenReason;
using hv::virtio::Device;
using hv::virtio::DEVICE_NEEDS_RESET;
using hv::virtio::DRIVER;
using hv::virtio::DRIVER_OK;
using hv::virtio::FAILED;
using hv::virtio::FEATURES_OK;
using hv::virtio::QueueConfig;
using hv::virtio::Transport;
using hv::virtio::VIRTIO_F_RING_EVENT_IDX;
using hv::virtio::VIRTIO_F_VERSION_1;

namespace {

constexpr uint64_t kRam = 1 << 20;
constexpr uint64_t kOffered = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX | (1ull << 5);

class FakeDevice final : public Device {
  public:
    uint16_t device_id() const override { return 1; }
    uint64_t offered_features() const override { return kOffered; }
    uint16_t queue_count() const override { return 2; }
    uint16_t queue_max_size(uint16_t) const override { return 256; }
    uint32_t config_size() const override { return 0; }
    uint32_t read_config(uint32_t, uint32_t) override { return 0; }
    void write_config(uint32_t, uint32_t, uint32_t) override {}
    bool accept_features(uint64_t f) override {
        last_accepted = f;
        return !refuse;
    }
    void start() override { ++starts; }
    void stop() override { ++stops; }
    void queue_notify(uint16_t) override {}
    using Device::mark_broken_if_running;  // what a data path calls

    bool refuse = false;
    uint64_t last_accepted = 0;
    int starts = 0;
    int stops = 0;
};

class FakeTransport final : public Transport {
  public:
    void interrupt_queue(uint16_t) override { ++queue_irqs; }
    void interrupt_config() override { ++config_irqs; }
    int queue_irqs = 0;
    int config_irqs = 0;
};

// Two valid queues in the fake RAM (§2.7 alignments and sizes).
constexpr QueueConfig kQ0{256, true, 0x1000, 0x2000, 0x3000};
constexpr QueueConfig kQ1{256, true, 0x5000, 0x6000, 0x7000};

struct Fixture {
    Fixture() : ram(kRam, 0) { dev.attach(hv::guest::GuestMemory(ram.data(), ram.size()), &transport); }

    // The §3.1.1 sequence up to FEATURES_OK.
    void negotiate(uint64_t features = VIRTIO_F_VERSION_1) {
        dev.write_status(ACKNOWLEDGE);
        dev.write_status(ACKNOWLEDGE | DRIVER);
        dev.write_driver_features(features);
        dev.write_status(ACKNOWLEDGE | DRIVER | FEATURES_OK);
    }
    void bring_up(const QueueConfig& q0 = kQ0, const QueueConfig& q1 = kQ1) {
        negotiate();
        dev.write_queue(0, q0);
        dev.write_queue(1, q1);
        dev.write_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    }

    std::vector<uint8_t> ram;
    FakeDevice dev;
    FakeTransport transport;
};

}  // namespace

TEST(VirtioDevice, StatusSequenceStartsTheDeviceOnce) {
    Fixture f;
    f.dev.write_status(ACKNOWLEDGE);
    EXPECT_EQ(f.dev.status(), ACKNOWLEDGE);
    f.dev.write_status(ACKNOWLEDGE | DRIVER);
    f.dev.write_driver_features(VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX);
    f.dev.write_status(ACKNOWLEDGE | DRIVER | FEATURES_OK);
    // §3.1.1 step 6: the driver re-reads status to see FEATURES_OK stuck.
    EXPECT_EQ(f.dev.status(), ACKNOWLEDGE | DRIVER | FEATURES_OK);
    EXPECT_EQ(f.dev.last_accepted, VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX);
    EXPECT_TRUE(f.dev.negotiated(VIRTIO_F_RING_EVENT_IDX));
    f.dev.write_queue(0, kQ0);
    f.dev.write_queue(1, kQ1);
    EXPECT_EQ(f.dev.starts, 0);
    f.dev.write_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    EXPECT_EQ(f.dev.status(), ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    EXPECT_EQ(f.dev.starts, 1);
    // Writing the same status again adds nothing and starts nothing.
    f.dev.write_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    EXPECT_EQ(f.dev.starts, 1);
    EXPECT_EQ(f.transport.config_irqs, 0);
}

TEST(VirtioDevice, ClearingBitsWithoutResetIsIgnored) {
    Fixture f;
    f.dev.write_status(ACKNOWLEDGE);
    f.dev.write_status(ACKNOWLEDGE | DRIVER);
    f.dev.write_status(DRIVER);  // drops ACKNOWLEDGE
    EXPECT_EQ(f.dev.status(), ACKNOWLEDGE | DRIVER);
    EXPECT_EQ(f.dev.ignored_writes(), 1u);
}

TEST(VirtioDevice, TheDriverCannotSetDeviceOrUndefinedBits) {
    Fixture f;
    f.bring_up();
    const uint8_t ok = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;
    for (uint8_t bit : {uint8_t{DEVICE_NEEDS_RESET}, uint8_t{16}, uint8_t{32}}) {
        f.dev.write_status(ok | bit);
        EXPECT_EQ(f.dev.status(), ok) << int{bit};
    }
    EXPECT_EQ(f.dev.ignored_writes(), 3u);
    EXPECT_EQ(f.dev.stops, 0);
    // Once the device set DEVICE_NEEDS_RESET, a read-modify-write by the
    // driver (Linux: get_status() | FAILED) carries it along and is accepted.
    f.dev.mark_broken(BrokenReason::bad_descriptor);
    f.dev.write_status(f.dev.status() | FAILED);
    EXPECT_EQ(f.dev.status(), ok | DEVICE_NEEDS_RESET | FAILED);
}

TEST(VirtioDevice, FeatureSubsetsTheDeviceRefuses) {
    struct Case {
        const char* what;
        uint64_t features;
        bool device_refuses;
    } const cases[] = {
        {"a bit not offered", VIRTIO_F_VERSION_1 | 1ull, false},
        {"a high bit not offered", VIRTIO_F_VERSION_1 | (1ull << 63), false},
        {"no VERSION_1 (legacy driver)", VIRTIO_F_RING_EVENT_IDX, false},
        {"accept_features() says no", VIRTIO_F_VERSION_1, true},
    };
    for (const Case& c : cases) {
        Fixture f;
        f.dev.refuse = c.device_refuses;
        f.negotiate(c.features);
        EXPECT_EQ(f.dev.status() & FEATURES_OK, 0) << c.what;
        // DRIVER_OK without FEATURES_OK does not start the device.
        f.dev.write_queue(0, kQ0);
        f.dev.write_status(ACKNOWLEDGE | DRIVER | DRIVER_OK);
        EXPECT_EQ(f.dev.starts, 0) << c.what;
        EXPECT_EQ(f.dev.status() & DRIVER_OK, 0) << c.what;
    }
}

TEST(VirtioDevice, FeaturesAreFixedOnceFeaturesOk) {
    Fixture f;
    f.negotiate(VIRTIO_F_VERSION_1);
    f.dev.write_driver_features(kOffered);
    EXPECT_EQ(f.dev.driver_features(), VIRTIO_F_VERSION_1);
    EXPECT_EQ(f.dev.ignored_writes(), 1u);
}

TEST(VirtioDevice, InvalidQueuesBreakTheDeviceAtDriverOk) {
    struct Case {
        const char* what;
        QueueConfig q;
    } const cases[] = {
        {"size 0", {0, true, 0x1000, 0x2000, 0x3000}},
        {"size not a power of two", {100, true, 0x1000, 0x2000, 0x3000}},
        {"size above the maximum", {512, true, 0x1000, 0x2000, 0x3000}},
        {"descriptor table not 16-aligned", {256, true, 0x1008, 0x2000, 0x3000}},
        {"available ring not 2-aligned", {256, true, 0x1000, 0x2001, 0x3000}},
        {"used ring not 4-aligned", {256, true, 0x1000, 0x2000, 0x3002}},
        {"descriptor table outside RAM", {256, true, kRam, 0x2000, 0x3000}},
        {"used ring straddles the end of RAM", {256, true, 0x1000, 0x2000, kRam - 0x100}},
        {"available ring wraps 2^64", {256, true, 0x1000, ~0ull - 0x1ff, 0x3000}},
    };
    for (const Case& c : cases) {
        Fixture f;
        f.bring_up(kQ0, c.q);
        EXPECT_EQ(f.dev.starts, 0) << c.what;
        EXPECT_NE(f.dev.status() & DEVICE_NEEDS_RESET, 0) << c.what;
        EXPECT_EQ(f.dev.broken_reason(), BrokenReason::bad_queue_config) << c.what;
        EXPECT_EQ(f.dev.broken_count(BrokenReason::bad_queue_config), 1u) << c.what;
        EXPECT_EQ(f.transport.config_irqs, 1) << c.what;
    }
}

TEST(VirtioDevice, DisabledQueuesAreNotChecked) {
    Fixture f;
    f.bring_up(kQ0, QueueConfig{3, false, 1, 1, 1});
    EXPECT_EQ(f.dev.starts, 1);
    EXPECT_EQ(f.dev.broken_reason(), BrokenReason::none);
}

TEST(VirtioDevice, QueueConfigIsLockedWhileEnabledOrRunning) {
    Fixture f;
    f.negotiate();
    f.dev.write_queue(0, kQ0);
    f.dev.write_queue(0, kQ1);  // already enabled
    EXPECT_EQ(f.dev.queue(0).desc, kQ0.desc);
    f.dev.write_queue(2, kQ1);  // no such queue
    EXPECT_EQ(f.dev.queue(2).size, 0);
    f.dev.write_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    f.dev.write_queue(1, kQ1);  // after DRIVER_OK
    EXPECT_FALSE(f.dev.queue(1).enabled);
    EXPECT_EQ(f.dev.ignored_writes(), 3u);
}

TEST(VirtioDevice, MarkBrokenStopsAndNotifiesOnce) {
    Fixture f;
    f.bring_up();
    f.dev.mark_broken(BrokenReason::bad_descriptor);
    EXPECT_EQ(f.dev.stops, 1);
    EXPECT_NE(f.dev.status() & DEVICE_NEEDS_RESET, 0);
    EXPECT_NE(f.dev.status() & DRIVER_OK, 0);  // §2.1.2: the other bits stay
    EXPECT_EQ(f.dev.broken_reason(), BrokenReason::bad_descriptor);
    EXPECT_EQ(f.transport.config_irqs, 1);
    // A second report is counted but changes nothing else.
    f.dev.mark_broken(BrokenReason::chain_too_long);
    EXPECT_EQ(f.dev.broken_count(BrokenReason::bad_descriptor), 1u);
    EXPECT_EQ(f.dev.broken_count(BrokenReason::chain_too_long), 1u);
    EXPECT_EQ(f.dev.broken_reason(), BrokenReason::bad_descriptor);
    EXPECT_EQ(f.dev.stops, 1);
    EXPECT_EQ(f.transport.config_irqs, 1);
}

TEST(VirtioDevice, LateDataPathReportAfterResetIsOnlyCounted) {
    Fixture f;
    f.bring_up();
    f.dev.write_status(0);
    f.dev.mark_broken_if_running(BrokenReason::bad_avail_index);
    EXPECT_EQ(f.dev.status(), 0);
    EXPECT_EQ(f.dev.broken_reason(), BrokenReason::none);
    EXPECT_EQ(f.dev.broken_count(BrokenReason::bad_avail_index), 1u);
    EXPECT_EQ(f.transport.config_irqs, 0);
    // While running it is mark_broken().
    f.bring_up();
    f.dev.mark_broken_if_running(BrokenReason::bad_descriptor);
    EXPECT_NE(f.dev.status() & DEVICE_NEEDS_RESET, 0);
    EXPECT_EQ(f.dev.stops, 2);
    EXPECT_EQ(f.transport.config_irqs, 1);
}

TEST(VirtioDevice, TransportMayBreakTheDeviceBeforeDriverOk) {
    // virtio-pci does, for a queue enabled with an invalid size.
    Fixture f;
    f.negotiate();
    f.dev.mark_broken(BrokenReason::bad_queue_config);
    EXPECT_NE(f.dev.status() & DEVICE_NEEDS_RESET, 0);
    EXPECT_EQ(f.dev.stops, 0);
    EXPECT_EQ(f.transport.config_irqs, 1);
    // DRIVER_OK is refused from then on.
    f.dev.write_status(f.dev.status() | DRIVER_OK);
    EXPECT_EQ(f.dev.starts, 0);
}

TEST(VirtioDevice, ResetClearsEverythingAndReinitWorks) {
    Fixture f;
    f.bring_up();
    f.dev.mark_broken(BrokenReason::chain_too_long);
    f.dev.write_status(0);
    EXPECT_EQ(f.dev.status(), 0);
    EXPECT_EQ(f.dev.driver_features(), 0u);
    EXPECT_FALSE(f.dev.queue(0).enabled);
    EXPECT_EQ(f.dev.queue(1).size, 0);
    EXPECT_EQ(f.dev.broken_reason(), BrokenReason::none);
    EXPECT_EQ(f.dev.stops, 1);                                        // already stopped by mark_broken
    EXPECT_EQ(f.dev.broken_count(BrokenReason::chain_too_long), 1u);  // counts survive

    f.bring_up();
    EXPECT_EQ(f.dev.starts, 2);
    EXPECT_EQ(f.dev.status(), ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    f.dev.write_status(0);  // a reset of a running device stops it
    EXPECT_EQ(f.dev.stops, 2);
}

TEST(VirtioDevice, FailedStopsTheDevice) {
    Fixture f;
    f.bring_up();
    f.dev.write_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | FAILED);
    EXPECT_EQ(f.dev.stops, 1);
    EXPECT_NE(f.dev.status() & FAILED, 0);
}

TEST(VirtioDevice, BrokenReasonNames) {
    struct Case {
        BrokenReason r;
        const char* name;
    } const cases[] = {
        {BrokenReason::none, "none"},
        {BrokenReason::bad_queue_config, "bad_queue_config"},
        {BrokenReason::bad_descriptor, "bad_descriptor"},
        {BrokenReason::chain_too_long, "chain_too_long"},
        {BrokenReason::bad_avail_index, "bad_avail_index"},
        {BrokenReason::bad_frame, "bad_frame"},
        {BrokenReason::count, "unknown"},
    };
    for (const Case& c : cases) EXPECT_STREQ(hv::virtio::broken_reason_name(c.r), c.name);
}
