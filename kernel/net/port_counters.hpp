#pragma once
// Per-port counters, from the SWITCH's point of view:
//   rx_packets/rx_bytes  frames the switch received from the port (its guest
//                        sent them), every one, including those then dropped
//   tx_packets/tx_bytes  frames the switch delivered to the port (bytes as
//                        delivered, i.e. after the egress tag edit)
//   drops[reason]        see DropReason: no_buffer is counted on the receiving
//                        port, every other reason on the ingress port
//   floods               frames from this port flooded (broadcast, multicast,
//                        unknown unicast)
//   fdb_full             frames from this port whose source could not be
//                        learned because the MAC table was full (forwarded)
// Every rx frame ends as exactly one of: forwarded (unicast or flood), one
// ingress drop reason, or filtered silently because its destination was
// learned on the ingress port itself (802.1Q §8.6.3: never sent back).

#include <stddef.h>
#include <stdint.h>

namespace hv::net {

enum class DropReason : uint8_t {
    no_buffer,       // receiver had no RX buffer, or was down (counted on the receiver)
    spoofed,         // source MAC is not the port's static MAC, or is another port's static MAC
    vlan_filtered,   // tag not allowed by the port's VLAN mode, or a tag behind the tag (double tagging)
    rate_limited,    // over the port's ingress token bucket
    malformed,       // length, segment count, or a group source MAC
    port_down,       // sent by a port that is administratively down
    protected_port,  // unicast between two protected ports
    mac_limit,       // a new source MAC from a port that holds its max_macs learned MACs
    count,
};
inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::count);
const char* drop_reason_name(DropReason r);

// A snapshot (Switch::counters()); each field is read atomically, the set is not.
struct PortCounters {
    uint64_t rx_packets = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_packets = 0;
    uint64_t tx_bytes = 0;
    uint64_t floods = 0;
    uint64_t fdb_full = 0;
    uint64_t drops[kDropReasonCount] = {};

    uint64_t drop(DropReason r) const { return drops[static_cast<size_t>(r)]; }
};

}  // namespace hv::net
