#pragma once
// The guests' tiny IPv4 host: one MAC, one address, no routing. It classifies
// each received frame, answers what a host must answer (ARP requests for its
// address, ICMP echo requests, and UDP echo on port 7 when enabled) through a
// send callback, and builds the frames the guests originate. Pure: the driver
// is behind SendFn, so the host unit tests run it against a fake.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"
#include "guests/runtime/net/arp.hpp"
#include "guests/runtime/net/ethernet.hpp"
#include "guests/runtime/net/icmp.hpp"
#include "guests/runtime/net/udp.hpp"

namespace hvg::net {

enum class RxKind : uint8_t {
    malformed,    // too short, bad header, bad checksum, fragment
    not_for_us,   // another unicast MAC or IP, or an ARP request for someone else
    arp_request,  // for our address (answered)
    arp_reply,    // learned into the cache
    icmp_echo_request,
    icmp_echo_reply,
    udp,
    other,       // a protocol or EtherType this stack does not speak
    other_vlan,  // a VLAN no interface of the NIC is on (VlanMux), never seen by a stack
};
const char* rx_kind_name(RxKind k);

struct RxInfo {
    RxKind kind;
    EthHeader eth;
    Ipv4Addr src_ip;  // ARP sender or IPv4 source
    IcmpEcho echo;    // kind == icmp_echo_*
    UdpDatagram udp;  // kind == udp
    bool answered;    // a reply frame was handed to SendFn and accepted
};

struct StackCounters {
    uint64_t rx_frames;
    uint64_t rx_malformed;
    uint64_t rx_not_for_us;
    uint64_t rx_other;
    uint64_t arp_answered;
    uint64_t icmp_answered;
    uint64_t udp_echoed;
    uint64_t tx_frames;
    uint64_t tx_failed;  // SendFn refused (TX ring full) or the frame did not fit
};

class Stack {
  public:
    // Returns true when the driver took the frame (it copies it).
    using SendFn = bool (*)(void* ctx, const uint8_t* frame, size_t len);

    // Constant-initialisable, so a guest can keep one in .bss; init() before use.
    constexpr Stack() = default;
    Stack(const MacAddr& mac, Ipv4Addr ip, SendFn send, void* ctx) { init(mac, ip, send, ctx); }
    void init(const MacAddr& mac, Ipv4Addr ip, SendFn send, void* ctx) {
        mac_ = mac;
        ip_ = ip;
        send_ = send;
        ctx_ = ctx;
    }

    void set_udp_echo(bool on) { udp_echo_ = on; }

    // Classifies one received frame (bytes from the destination MAC on, no
    // virtio header) and answers it if a host must. `now` stamps ARP entries.
    RxInfo handle(const uint8_t* frame, size_t len, uint64_t now);

    bool send_arp_request(Ipv4Addr target);
    bool send_icmp_echo(const MacAddr& dst_mac, Ipv4Addr dst, uint16_t id, uint16_t seq, const uint8_t* data,
                        size_t data_len);
    bool send_udp(const MacAddr& dst_mac, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port, const uint8_t* data,
                  size_t data_len);

    bool resolve(Ipv4Addr ip, MacAddr* out) const { return arp_.lookup(ip, out); }
    ArpCache& arp_cache() { return arp_; }
    const StackCounters& counters() const { return counters_; }
    const MacAddr& mac() const { return mac_; }
    Ipv4Addr ip() const { return ip_; }
    // The IPv4 identification of the next packet; one per packet sent.
    uint16_t next_ip_id() { return ip_id_++; }

  private:
    void handle_arp(const uint8_t* p, size_t len, uint64_t now, RxInfo* info);
    void handle_ipv4(const uint8_t* p, size_t len, RxInfo* info);
    bool transmit(size_t len);

    MacAddr mac_ = {};
    Ipv4Addr ip_ = {};
    SendFn send_ = nullptr;
    void* ctx_ = nullptr;
    bool udp_echo_ = false;
    uint16_t ip_id_ = 1;
    ArpCache arp_;
    StackCounters counters_ = {};
    uint8_t tx_[kEthMaxFrameLen] = {};  // frames are built here, then copied by the driver
};

}  // namespace hvg::net
