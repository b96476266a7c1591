#include "kernel/net/frame.hpp"

namespace hv::net {

const char* deliver_result_name(DeliverResult r) {
    switch (r) {
        case DeliverResult::delivered: return "delivered";
        case DeliverResult::no_buffer: return "no_buffer";
        case DeliverResult::down: return "down";
    }
    return "unknown";
}

uint32_t copy_view(const FrameView& f, uint32_t offset, uint8_t* dst, uint32_t n) {
    if (offset >= f.len) return 0;
    if (n > f.len - offset) n = f.len - offset;
    if (f.count == 1 && f.segs[0].len >= f.len) {  // the common case: one contiguous buffer
        __builtin_memcpy(dst, f.segs[0].data + offset, n);
        return n;
    }
    uint32_t done = 0;
    // Skip whole segments before offset, then copy piece by piece.
    for (uint32_t i = 0; i < f.count && done < n; ++i) {
        const Segment& s = f.segs[i];
        if (offset >= s.len) {
            offset -= s.len;
            continue;
        }
        uint32_t take = s.len - offset;
        if (take > n - done) take = n - done;
        __builtin_memcpy(dst + done, s.data + offset, take);
        done += take;
        offset = 0;
    }
    return done;
}

uint32_t copy_out(const OutFrame& f, uint32_t offset, uint8_t* dst, uint32_t n) {
    uint32_t done = 0;
    if (offset < f.head_len) {
        uint32_t take = f.head_len - offset;
        if (take > n) take = n;
        __builtin_memcpy(dst, f.head + offset, take);
        done = take;
        offset = f.head_len;
    }
    if (done == n) return done;
    uint32_t tail_off = offset - f.head_len;
    uint64_t src_pos = static_cast<uint64_t>(f.src_offset) + tail_off;
    if (src_pos >= f.src.len) return done;
    return done + copy_view(f.src, static_cast<uint32_t>(src_pos), dst + done, n - done);
}

}  // namespace hv::net
