#pragma once
// A stand-in for net::copy_out (kernel/net/frame.hpp) while kernel/net/frame.cpp
// is written elsewhere: weak, so the real definition wins as soon as it is
// linked in, and the archive member holding it is not pulled in for this
// symbol alone (no duplicate definition either way). Include from exactly one
// .cpp per test binary.

#include <atomic>
#include <cstdint>
#include <cstring>

#include "kernel/net/frame.hpp"

namespace hv::test {
// Called at the start of every fallback copy_out(): lets a test hold a
// deliver() in the middle of its work (only while this fallback is linked).
inline std::atomic<void (*)()> copy_out_hook{nullptr};
}  // namespace hv::test

namespace hv::net {

__attribute__((weak)) uint32_t copy_out(const OutFrame& f, uint32_t offset, uint8_t* dst, uint32_t n) {
    if (void (*hook)() = hv::test::copy_out_hook.load()) hook();
    uint32_t done = 0;
    // The switch's private head first...
    while (done < n && offset < f.head_len) {
        const uint32_t k = (f.head_len - offset < n - done) ? f.head_len - offset : n - done;
        std::memcpy(dst + done, f.head + offset, k);
        done += k;
        offset += k;
    }
    // ...then the sender's bytes from src_offset on.
    uint64_t pos = static_cast<uint64_t>(offset - f.head_len) + f.src_offset;  // position in src
    uint64_t seg_start = 0;
    for (uint32_t i = 0; i < f.src.count && done < n; ++i) {
        const Segment& s = f.src.segs[i];
        const uint64_t seg_end = seg_start + s.len;
        if (pos >= seg_start && pos < seg_end) {
            const uint64_t in = pos - seg_start;
            const uint64_t k = (seg_end - pos < n - done) ? seg_end - pos : n - done;
            std::memcpy(dst + done, s.data + in, k);
            done += static_cast<uint32_t>(k);
            pos += k;
        }
        seg_start = seg_end;
    }
    return done;
}

}  // namespace hv::net
