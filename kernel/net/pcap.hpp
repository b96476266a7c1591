#pragma once
// A classic libpcap capture file written into a caller-provided buffer
// (https://www.tcpdump.org/manpages/pcap-savefile.5.html; IETF
// draft-ietf-opsawg-pcap §4-5): a 24-byte file header, then per packet a
// 16-byte record header and the first snaplen bytes of the packet. Written in
// the host's (little-endian) byte order with the microsecond magic
// 0xa1b2c3d4, which tcpdump, tshark and Wireshark all read.
//
// The buffer never grows: a record that does not fit is dropped and counted,
// and so is every record after it (a capture is always a prefix of the
// traffic, never one with holes). reset() starts a new file in the same buffer.
// Not thread-safe: the switch serializes each mirror session with its own lock.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/result.hpp"

namespace hv::net {

class PcapWriter {
  public:
    static constexpr uint32_t kMagic = 0xa1b2c3d4;  // microsecond timestamps
    static constexpr uint16_t kVersionMajor = 2;
    static constexpr uint16_t kVersionMinor = 4;
    static constexpr uint32_t kLinktypeEthernet = 1;  // LINKTYPE_ETHERNET
    static constexpr size_t kFileHeaderLen = 24;
    static constexpr size_t kRecordHeaderLen = 16;
    static constexpr uint32_t kDefaultSnaplen = 65535;
    static constexpr uint32_t kMaxSnaplen = 262144;  // libpcap's MAXIMUM_SNAPLEN

    struct Bytes {
        const uint8_t* data;
        size_t len;
    };

    // Uses buf[0, cap) and writes the file header. cap must hold at least the
    // file header; snaplen is 1..kMaxSnaplen.
    Result<void> init(uint8_t* buf, size_t cap, uint32_t snaplen = kDefaultSnaplen);
    bool active() const { return buf_ != nullptr; }

    // Appends one packet of len bytes captured at ts_ns (cut to snaplen).
    // false: dropped (not initialized, or the buffer is full).
    bool append(uint64_t ts_ns, const uint8_t* data, uint32_t len);

    // For packets that are not contiguous: writes the record header for a
    // packet of orig_len bytes and returns where its *incl_len (orig_len cut
    // to snaplen) bytes go; the caller fills exactly that many. nullptr:
    // dropped as for append().
    uint8_t* begin_record(uint64_t ts_ns, uint32_t orig_len, uint32_t* incl_len);

    // The whole file so far (a valid pcap file at any moment between calls).
    Bytes bytes() const { return {buf_, len_}; }
    // Starts a new file: header only, counters cleared.
    void reset();

    uint32_t snaplen() const { return snaplen_; }
    uint64_t records() const { return records_; }
    uint64_t dropped() const { return dropped_; }      // records that did not fit
    uint64_t truncated() const { return truncated_; }  // records cut to snaplen

  private:
    uint8_t* buf_ = nullptr;
    size_t cap_ = 0;
    size_t len_ = 0;
    uint32_t snaplen_ = kDefaultSnaplen;
    bool full_ = false;
    uint64_t records_ = 0;
    uint64_t dropped_ = 0;
    uint64_t truncated_ = 0;
};

}  // namespace hv::net
