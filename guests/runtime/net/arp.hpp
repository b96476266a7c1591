#pragma once
// ARP for IPv4 over Ethernet (RFC 826) and a small cache of answers.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"

namespace hvg::net {

inline constexpr size_t kArpLen = 28;  // Ethernet/IPv4 ARP packet
inline constexpr uint16_t kArpHtypeEthernet = 1;
inline constexpr uint16_t kArpOpRequest = 1;
inline constexpr uint16_t kArpOpReply = 2;

struct ArpPacket {
    uint16_t op;
    MacAddr sha;   // sender hardware address
    Ipv4Addr spa;  // sender protocol address
    MacAddr tha;   // target hardware address (ignored in requests)
    Ipv4Addr tpa;  // target protocol address
};

// False unless htype = Ethernet, ptype = IPv4, hlen = 6, plen = 4, op is a
// request or a reply, and `len` holds 28 bytes (trailing padding is ignored).
bool parse_arp(const uint8_t* p, size_t len, ArpPacket* out);
// Writes the 28-byte packet; returns kArpLen, or 0 if cap is too small.
size_t write_arp(uint8_t* p, size_t cap, const ArpPacket& a);

// IPv4 -> MAC, fixed capacity; a full cache replaces its oldest entry.
class ArpCache {
  public:
    static constexpr size_t kEntries = 16;

    // Adds or refreshes an entry. Zero, broadcast and multicast MACs and the
    // address 0.0.0.0 are refused (an answer never carries them legitimately).
    bool insert(Ipv4Addr ip, const MacAddr& mac, uint64_t now);
    bool lookup(Ipv4Addr ip, MacAddr* out) const;
    size_t size() const { return used_; }

  private:
    struct Entry {
        Ipv4Addr ip;
        MacAddr mac;
        uint64_t stamp;
    };
    Entry entries_[kEntries] = {};
    size_t used_ = 0;
};

}  // namespace hvg::net
