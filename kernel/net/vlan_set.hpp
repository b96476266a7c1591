#pragma once
// A set of 802.1Q VLAN IDs: one bit per 12-bit VID (IEEE 802.1Q-2018 §9.6).
// VID 0 (priority tag) and 4095 (reserved) are never members of a VLAN; the
// switch rejects a set that contains them.

#include <stddef.h>
#include <stdint.h>

namespace hv::net {

inline constexpr uint16_t kVidNone = 0;  // "no VLAN" / priority-tagged frame
inline constexpr uint16_t kVidMin = 1;
inline constexpr uint16_t kVidMax = 4094;
inline constexpr uint16_t kVidCount = 4096;  // 12 bits
inline constexpr uint16_t kVidMask = 0x0FFF;

constexpr bool vid_valid(uint32_t vid) {
    return vid >= kVidMin && vid <= kVidMax;
}

class VlanSet {
  public:
    constexpr void add(uint16_t vid) {
        if (vid < kVidCount) words_[vid / 64] |= 1ull << (vid % 64);
    }
    constexpr void remove(uint16_t vid) {
        if (vid < kVidCount) words_[vid / 64] &= ~(1ull << (vid % 64));
    }
    // [first, last], clipped to 12 bits.
    constexpr void add_range(uint16_t first, uint16_t last) {
        for (uint32_t v = first; v <= last && v < kVidCount; ++v) add(static_cast<uint16_t>(v));
    }
    constexpr bool contains(uint16_t vid) const { return vid < kVidCount && (words_[vid / 64] >> (vid % 64) & 1) != 0; }
    constexpr void clear() {
        for (auto& w : words_) w = 0;
    }
    constexpr bool empty() const {
        for (auto w : words_)
            if (w) return false;
        return true;
    }
    constexpr size_t count() const {
        size_t n = 0;
        // Not __builtin_popcountll: without -mpopcnt GCC calls libgcc's
        // __popcountdi2, and the hypervisor links no libgcc.
        for (uint64_t w : words_)
            for (; w != 0; w &= w - 1) ++n;
        return n;
    }

  private:
    uint64_t words_[kVidCount / 64] = {};
};
static_assert(sizeof(VlanSet) == 512);

}  // namespace hv::net
