#pragma once
// The contract between a virtio device and its transport (virtio 1.2, §2 and
// §4.1). The device core (this class, virtio_device.cpp) holds the state every
// virtio device has: status, negotiated features, queue configuration. A
// device type (virtio_net.cpp) fills in the hooks. A transport (virtio_pci.cpp
// now; virtio-mmio could follow) only decodes register accesses into the calls
// below and turns "interrupt" into its own mechanism (an MSI-X message).
// Pure: no hardware, no kernel globals; guest memory only through GuestMemory.

#include <stddef.h>
#include <stdint.h>

#include "kernel/guest/guest_memory.hpp"
#include "kernel/lib/spinlock.hpp"

namespace hv::virtio {

// Device status bits (§2.1).
enum Status : uint8_t {
    ACKNOWLEDGE = 1,
    DRIVER = 2,
    DRIVER_OK = 4,
    FEATURES_OK = 8,
    DEVICE_NEEDS_RESET = 64,
    FAILED = 128,
};

// Feature bits shared by all device types (§6).
inline constexpr uint64_t VIRTIO_F_INDIRECT_DESC = 1ull << 28;
inline constexpr uint64_t VIRTIO_F_RING_EVENT_IDX = 1ull << 29;
inline constexpr uint64_t VIRTIO_F_VERSION_1 = 1ull << 32;
inline constexpr uint64_t VIRTIO_F_ACCESS_PLATFORM = 1ull << 33;

inline constexpr uint16_t kMaxQueues = 8;
inline constexpr uint16_t kMaxQueueSize = 1024;  // per queue; a power of two

// What the driver programmed for one queue (§4.1.4.3 common configuration).
// Guest-physical addresses; validated by the device core when the queue is
// enabled and again (as every access is) when used.
struct QueueConfig {
    uint16_t size;   // driver-chosen, power of two, <= the device's maximum
    bool enabled;    // queue_enable written with 1
    uint64_t desc;   // descriptor table
    uint64_t driver; // available ring
    uint64_t device; // used ring
};

// How a device reaches its driver. Implemented by the transport.
class Transport {
  public:
    // Buffers were added to queue q's used ring: interrupt the driver (the
    // device already applied EVENT_IDX / NO_INTERRUPT suppression).
    virtual void interrupt_queue(uint16_t q) = 0;
    // The device configuration or status changed (e.g. DEVICE_NEEDS_RESET).
    virtual void interrupt_config() = 0;

  protected:
    ~Transport() = default;
};

// Why a device was marked broken; counted per reason and printed.
enum class BrokenReason : uint8_t {
    none = 0,
    bad_queue_config,  // size not a power of two, rings outside guest RAM, ...
    bad_descriptor,    // address outside RAM, zero length, wrong WRITE direction
    chain_too_long,    // longer than the queue size, or a loop
    bad_avail_index,   // avail.idx moved by more than the queue size
    bad_frame,         // device-type-specific: e.g. a TX frame larger than the MTU allows
    count,
};
const char* broken_reason_name(BrokenReason r);

class Device {
  public:
    // ---- Hooks implemented by the device type ----
    virtual uint16_t device_id() const = 0;          // §5: 1 = network card
    virtual uint64_t offered_features() const = 0;   // includes VIRTIO_F_VERSION_1
    virtual uint16_t queue_count() const = 0;        // <= kMaxQueues
    virtual uint16_t queue_max_size(uint16_t q) const = 0;
    virtual uint32_t config_size() const = 0;        // bytes of device-specific configuration
    // Device-specific configuration space; width is 1, 2 or 4 and off + width
    // <= config_size() (the transport checks both before calling).
    virtual uint32_t read_config(uint32_t off, uint32_t width) = 0;
    virtual void write_config(uint32_t off, uint32_t width, uint32_t value) = 0;
    // The driver set FEATURES_OK: may this subset (already checked to be a
    // subset of offered_features()) be used? false: FEATURES_OK stays clear.
    virtual bool accept_features(uint64_t features) = 0;
    // DRIVER_OK was set: queues are configured; start processing.
    virtual void start() = 0;
    // Reset or broken: stop touching the queues. After it returns no other CPU
    // is inside the device's data path any more.
    virtual void stop() = 0;
    // The driver notified queue q (the transport checked q < queue_count()).
    virtual void queue_notify(uint16_t q) = 0;

    // ---- The transport-neutral core (virtio_device.cpp) ----
    void attach(const guest::GuestMemory& mem, Transport* transport);
    uint8_t status() const { return status_; }
    // A write of the device status field: 0 resets the device; otherwise the
    // §3.1.1 sequence is enforced (bits may only be added; FEATURES_OK only
    // with a feature set the device accepts; DRIVER_OK only after FEATURES_OK
    // with every enabled queue valid, else the device is marked broken).
    void write_status(uint8_t status);
    uint64_t driver_features() const { return driver_features_; }
    // Accepted only before FEATURES_OK; bits not offered are refused (counted).
    void write_driver_features(uint64_t features);
    bool negotiated(uint64_t feature) const { return (driver_features_ & feature) != 0; }
    // Queue configuration is writable only while the queue is disabled and
    // DRIVER_OK is clear; other writes are ignored and counted.
    QueueConfig queue(uint16_t q) const;
    void write_queue(uint16_t q, const QueueConfig& cfg);
    uint8_t config_generation() const { return config_generation_; }
    // Sets DEVICE_NEEDS_RESET, stops the device, counts the reason and tells
    // the driver (§2.1.2). The guest can recover only by resetting the device.
    // May be called from any CPU, but not from inside start() or stop(), nor
    // with a data-path lock held.
    void mark_broken(BrokenReason reason);
    BrokenReason broken_reason() const { return broken_; }
    uint64_t broken_count(BrokenReason r) const { return broken_counts_[static_cast<size_t>(r)]; }
    uint64_t ignored_writes() const { return ignored_writes_; }

  protected:
    ~Device() = default;
    const guest::GuestMemory& memory() const { return mem_; }
    Transport* transport() const { return transport_; }
    void bump_config_generation() { ++config_generation_; }

    // start() ran and stop() has not: the data path may run.
    bool running() const { return running_; }
    // mark_broken() for a device type's data path, which may run on another
    // CPU and report an error just after a reset stopped it: applies only
    // while the device runs (otherwise the report is only counted).
    void mark_broken_if_running(BrokenReason reason);

  private:
    void reset();
    void halt();  // stop() once, if running
    bool write_status_locked(uint8_t status);      // true: tell the driver (interrupt_config)
    bool mark_broken_locked(BrokenReason reason);  // true: tell the driver

    // Serializes the control operations (status, features, queue
    // configuration, mark_broken), which the guest's vCPUs and other CPUs'
    // data paths can reach at once. Held around start()/stop(); never held
    // while the transport is called.
    Spinlock ctl_lock_;

    guest::GuestMemory mem_;
    Transport* transport_ = nullptr;
    uint8_t status_ = 0;
    bool running_ = false;
    uint8_t config_generation_ = 0;
    uint64_t driver_features_ = 0;
    QueueConfig queues_[kMaxQueues] = {};
    BrokenReason broken_ = BrokenReason::none;
    uint64_t broken_counts_[static_cast<size_t>(BrokenReason::count)] = {};
    uint64_t ignored_writes_ = 0;
};

}  // namespace hv::virtio
