#pragma once
// The MSI-X table, pending bit array and delivery rules of one PCI function
// (PCI Local Bus 3.0 §6.8.2). Pure state: the owner serialises calls (one lock)
// and sends the messages these functions hand back after dropping that lock.

#include <stddef.h>
#include <stdint.h>

#include "kernel/vdev/msi_sink.hpp"

namespace hv::vdev {

// PCI 3.0 §6.8.2: the MSI-X capability structure in configuration space.
struct MsixCapability {
    uint8_t cap_id;  // PCI_CAP_ID_MSIX
    uint8_t next_ptr;
    uint16_t message_control;
    uint32_t table_offset_bir;  // bits 2:0 BAR indicator, 31:3 offset (QWORD aligned)
    uint32_t pba_offset_bir;
};
static_assert(sizeof(MsixCapability) == 12);
static_assert(offsetof(MsixCapability, message_control) == 2);
static_assert(offsetof(MsixCapability, table_offset_bir) == 4);
static_assert(offsetof(MsixCapability, pba_offset_bir) == 8);

inline constexpr uint8_t PCI_CAP_ID_MSIX = 0x11;
// §6.8.2 Message Control: table size is N - 1 (read-only); enable and function mask are RW.
inline constexpr uint16_t MSIX_CONTROL_TABLE_SIZE = 0x07ff;
inline constexpr uint16_t MSIX_CONTROL_FUNCTION_MASK = 1u << 14;
inline constexpr uint16_t MSIX_CONTROL_ENABLE = 1u << 15;

// §6.8.2: one MSI-X table entry (Message Address, Upper Address, Data, Vector Control).
struct MsixTableEntry {
    uint32_t message_address;  // bits 1:0 are zero (DWORD aligned)
    uint32_t message_upper_address;
    uint32_t message_data;
    uint32_t vector_control;  // bit 0: mask; the rest reserved
};
static_assert(sizeof(MsixTableEntry) == 16);
static_assert(offsetof(MsixTableEntry, message_upper_address) == 4);
static_assert(offsetof(MsixTableEntry, message_data) == 8);
static_assert(offsetof(MsixTableEntry, vector_control) == 12);
inline constexpr uint32_t MSIX_VECTOR_CONTROL_MASK = 1;

class MsixTable {
  public:
    // One QWORD of pending bits is enough for every device we model.
    static constexpr uint16_t kMaxEntries = 64;
    static constexpr uint32_t kPbaBytes = 8;

    // entries is clamped to 1..kMaxEntries.
    explicit MsixTable(uint16_t entries);

    uint16_t size() const { return size_; }
    uint32_t table_bytes() const { return uint32_t{size_} * sizeof(MsixTableEntry); }
    bool enabled() const { return enabled_; }
    bool function_masked() const { return function_masked_; }

    // Power-on state (§6.8.2, Message Control and Vector Control): disabled, every entry masked, nothing pending.
    void reset();
    // The virtio transport's reset drops pending messages, not the table.
    void clear_pending() { pending_ = 0; }
    bool pending(uint16_t vector) const { return vector < size_ && ((pending_ >> vector) & 1) != 0; }

    // Message Control (enable, function mask) or the command register's bus
    // master bit changed. Pending messages that may go now are cleared from the
    // PBA and written to out (room for size() entries); returns how many.
    size_t set_state(bool enabled, bool function_masked, bool bus_master, MsiWrite* out);

    enum class Signal : uint8_t {
        sent,       // *msg must be sent now
        pending,    // masked (entry, function or bus master off): PBA bit set
        disabled,   // MSI-X is off: no message, no PBA bit (§6.8.2 Message Control)
        no_vector,  // vector >= size(): nothing to signal
    };
    Signal signal(uint16_t vector, MsiWrite* msg);

    // Table and PBA accesses: off relative to the structure's start, aligned
    // DWORD or QWORD only (§6.8.2: other accesses are undefined; here they
    // fail and the caller counts them). Reads beyond the last entry return 0.
    bool read_table(uint32_t off, unsigned width, uint64_t* value) const;
    enum class Write : uint8_t { bad_access, done, send };  // send: *due was unmasked with its PBA bit set
    Write write_table(uint32_t off, unsigned width, uint64_t value, MsiWrite* due);
    bool read_pba(uint32_t off, unsigned width, uint64_t* value) const;

  private:
    bool deliverable(uint16_t vector) const;
    MsiWrite message(uint16_t vector) const;
    uint32_t read_dword(uint32_t off) const;
    bool write_dword(uint32_t off, uint32_t value);  // true: an entry was unmasked

    uint16_t size_;
    bool enabled_ = false;
    bool function_masked_ = false;
    bool bus_master_ = false;
    uint64_t pending_ = 0;
    MsixTableEntry entries_[kMaxEntries] = {};
};

}  // namespace hv::vdev
