#include "kernel/vdev/msix_table.hpp"

namespace hv::vdev {

MsixTable::MsixTable(uint16_t entries)
    : size_(entries == 0 ? uint16_t{1} : (entries > kMaxEntries ? kMaxEntries : entries)) {
    reset();
}

void MsixTable::reset() {
    enabled_ = false;
    function_masked_ = false;
    bus_master_ = false;
    pending_ = 0;
    // §6.8.2 Vector Control: the mask bit of every entry is set after reset.
    for (auto& e : entries_) e = MsixTableEntry{0, 0, 0, MSIX_VECTOR_CONTROL_MASK};
}

bool MsixTable::deliverable(uint16_t v) const {
    // §6.8.2 Message Control: the function mask overrides the entry's mask; a function whose bus
    // master enable is clear may not write to memory, and an MSI-X message is
    // such a write, so it stays pending until software turns bus mastering on.
    return enabled_ && !function_masked_ && bus_master_ && (entries_[v].vector_control & MSIX_VECTOR_CONTROL_MASK) == 0;
}

MsiWrite MsixTable::message(uint16_t v) const {
    const MsixTableEntry& e = entries_[v];
    return MsiWrite{(uint64_t{e.message_upper_address} << 32) | e.message_address, e.message_data};
}

size_t MsixTable::set_state(bool enabled, bool function_masked, bool bus_master, MsiWrite* out) {
    enabled_ = enabled;
    function_masked_ = function_masked;
    bus_master_ = bus_master;
    size_t n = 0;
    for (uint16_t v = 0; v < size_; ++v) {
        if (pending(v) && deliverable(v)) {
            pending_ &= ~(uint64_t{1} << v);
            out[n++] = message(v);
        }
    }
    return n;
}

MsixTable::Signal MsixTable::signal(uint16_t v, MsiWrite* msg) {
    if (!enabled_) return Signal::disabled;
    if (v >= size_) return Signal::no_vector;
    if (!deliverable(v)) {
        pending_ |= uint64_t{1} << v;
        return Signal::pending;
    }
    *msg = message(v);
    return Signal::sent;
}

namespace {
bool aligned_dword_or_qword(uint32_t off, unsigned width) {
    return (width == 4 || width == 8) && off % width == 0;
}
}  // namespace

uint32_t MsixTable::read_dword(uint32_t off) const {
    if (off >= table_bytes()) return 0;
    const MsixTableEntry& e = entries_[off / sizeof(MsixTableEntry)];
    switch (off % sizeof(MsixTableEntry)) {
        case offsetof(MsixTableEntry, message_address): return e.message_address;
        case offsetof(MsixTableEntry, message_upper_address): return e.message_upper_address;
        case offsetof(MsixTableEntry, message_data): return e.message_data;
        default: return e.vector_control;
    }
}

bool MsixTable::write_dword(uint32_t off, uint32_t value) {
    if (off >= table_bytes()) return false;  // beyond the table: ignored
    MsixTableEntry& e = entries_[off / sizeof(MsixTableEntry)];
    switch (off % sizeof(MsixTableEntry)) {
        case offsetof(MsixTableEntry, message_address): e.message_address = value & ~3u; return false;
        case offsetof(MsixTableEntry, message_upper_address): e.message_upper_address = value; return false;
        case offsetof(MsixTableEntry, message_data): e.message_data = value; return false;
        default: {
            const bool was_masked = (e.vector_control & MSIX_VECTOR_CONTROL_MASK) != 0;
            e.vector_control = value & MSIX_VECTOR_CONTROL_MASK;  // reserved bits read 0
            return was_masked && (e.vector_control & MSIX_VECTOR_CONTROL_MASK) == 0;
        }
    }
}

bool MsixTable::read_table(uint32_t off, unsigned width, uint64_t* value) const {
    if (!aligned_dword_or_qword(off, width)) return false;
    uint64_t v = read_dword(off);
    if (width == 8) v |= uint64_t{read_dword(off + 4)} << 32;
    *value = v;
    return true;
}

MsixTable::Write MsixTable::write_table(uint32_t off, unsigned width, uint64_t value, MsiWrite* due) {
    if (!aligned_dword_or_qword(off, width)) return Write::bad_access;
    bool unmasked = write_dword(off, static_cast<uint32_t>(value));
    if (width == 8) unmasked = write_dword(off + 4, static_cast<uint32_t>(value >> 32)) || unmasked;
    if (!unmasked) return Write::done;
    // §6.8.2 Pending Bits: unmasking an entry whose pending bit is set sends the
    // message. An aligned QWORD never spans two 16-byte entries.
    const auto v = static_cast<uint16_t>(off / sizeof(MsixTableEntry));
    if (!pending(v) || !deliverable(v)) return Write::done;
    pending_ &= ~(uint64_t{1} << v);
    *due = message(v);
    return Write::send;
}

bool MsixTable::read_pba(uint32_t off, unsigned width, uint64_t* value) const {
    if (!aligned_dword_or_qword(off, width)) return false;
    if (off >= kPbaBytes) {
        *value = 0;
        return true;
    }
    *value = width == 8 ? pending_ : (pending_ >> (off * 8)) & 0xffffffffu;
    return true;
}

}  // namespace hv::vdev
