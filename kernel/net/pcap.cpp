#include "kernel/net/pcap.hpp"

namespace hv::net {

namespace {

void store_u16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v);
    p[1] = static_cast<uint8_t>(v >> 8);
}
void store_u32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

Result<void> PcapWriter::init(uint8_t* buf, size_t cap, uint32_t snaplen) {
    if (buf == nullptr || cap < kFileHeaderLen) return make_error(Errc::invalid_argument, "pcap buffer too small", cap);
    if (snaplen == 0 || snaplen > kMaxSnaplen) return make_error(Errc::invalid_argument, "pcap snaplen", snaplen);
    buf_ = buf;
    cap_ = cap;
    snaplen_ = snaplen;
    reset();
    return ok_result();
}

void PcapWriter::reset() {
    records_ = dropped_ = truncated_ = 0;
    full_ = false;
    len_ = 0;
    if (buf_ == nullptr) return;
    // pcap-savefile(5): magic, version 2.4, thiszone 0 (UTC), sigfigs 0, snaplen, link type.
    store_u32(buf_ + 0, kMagic);
    store_u16(buf_ + 4, kVersionMajor);
    store_u16(buf_ + 6, kVersionMinor);
    store_u32(buf_ + 8, 0);
    store_u32(buf_ + 12, 0);
    store_u32(buf_ + 16, snaplen_);
    store_u32(buf_ + 20, kLinktypeEthernet);
    len_ = kFileHeaderLen;
}

uint8_t* PcapWriter::begin_record(uint64_t ts_ns, uint32_t orig_len, uint32_t* incl_len) {
    if (buf_ == nullptr) return nullptr;
    uint32_t incl = orig_len < snaplen_ ? orig_len : snaplen_;
    // cap_ >= len_ always; the record fits when cap_ - len_ covers it.
    if (full_ || cap_ - len_ < kRecordHeaderLen + incl) {
        full_ = true;
        ++dropped_;
        return nullptr;
    }
    uint8_t* rec = buf_ + len_;
    // Seconds wrap in 2106; the on-disk field is 32 bits.
    store_u32(rec + 0, static_cast<uint32_t>(ts_ns / 1'000'000'000));
    store_u32(rec + 4, static_cast<uint32_t>(ts_ns % 1'000'000'000 / 1000));
    store_u32(rec + 8, incl);
    store_u32(rec + 12, orig_len);
    len_ += kRecordHeaderLen + incl;
    ++records_;
    if (incl < orig_len) ++truncated_;
    *incl_len = incl;
    return rec + kRecordHeaderLen;
}

bool PcapWriter::append(uint64_t ts_ns, const uint8_t* data, uint32_t len) {
    uint32_t incl;
    uint8_t* dst = begin_record(ts_ns, len, &incl);
    if (dst == nullptr) return false;
    __builtin_memcpy(dst, data, incl);
    return true;
}

}  // namespace hv::net
