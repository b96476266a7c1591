#pragma once
// A minimal, independent reader of classic pcap files (pcap-savefile(5)) for
// tests: it checks what the switch's PcapWriter produced without sharing its code.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hv::test {

struct PcapRecord {
    uint32_t ts_sec, ts_usec, incl_len, orig_len;
    std::vector<uint8_t> data;
};

struct PcapFile {
    bool ok = false;  // header valid and every record complete
    uint32_t magic = 0;
    uint16_t version_major = 0, version_minor = 0;
    uint32_t snaplen = 0, linktype = 0;
    std::vector<PcapRecord> records;
};

inline uint32_t pcap_le32(const uint8_t* p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

inline PcapFile parse_pcap(const uint8_t* p, size_t len) {
    PcapFile f;
    if (len < 24) return f;
    f.magic = pcap_le32(p);
    f.version_major = static_cast<uint16_t>(p[4] | p[5] << 8);
    f.version_minor = static_cast<uint16_t>(p[6] | p[7] << 8);
    f.snaplen = pcap_le32(p + 16);
    f.linktype = pcap_le32(p + 20);
    size_t off = 24;
    while (off < len) {
        if (len - off < 16) return f;
        PcapRecord r;
        r.ts_sec = pcap_le32(p + off);
        r.ts_usec = pcap_le32(p + off + 4);
        r.incl_len = pcap_le32(p + off + 8);
        r.orig_len = pcap_le32(p + off + 12);
        off += 16;
        if (len - off < r.incl_len) return f;
        r.data.assign(p + off, p + off + r.incl_len);
        off += r.incl_len;
        f.records.push_back(std::move(r));
    }
    f.ok = true;
    return f;
}

}  // namespace hv::test
