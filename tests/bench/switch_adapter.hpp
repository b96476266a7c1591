#pragma once
// The seat a switch takes in the DPDK forwarding harness (dpdk_switch.cpp,
// `tools/hv bench net`). The harness receives bursts from DPDK memif ports on
// one forwarding core and hands every frame to the switch under test through
// this interface; the switch sends frames out through the harness's TxPort of
// each egress port. Nothing here depends on DPDK, so an adapter only knows
// bytes, the way the hypervisor's switch only knows guest buffers.
//
// Cost model: the harness's RX already copied each frame out of the memif ring
// into an mbuf, and its TX copies the mbuf into the peer's ring. An adapter
// writes each egress frame once into the buffer reserve() returns: the one copy
// the hypervisor's data path makes (issue #4: sender's TX buffers straight into
// the receiver's RX buffers). testpmd io-forwarding makes no copy of its own,
// which is why it is the harness limit.

#include <stdint.h>

#include <memory>

namespace hv::bench {

// The harness side of one port: the pending TX burst for rte_eth_tx_burst on
// the TX queue paired with the RX queue being served.
class TxPort {
  public:
    // A buffer for one frame of `len` bytes, appended to the pending burst
    // (which is sent first if it is full). nullptr when no buffer is left or
    // len does not fit one mbuf: the caller drops the frame (the harness counts it).
    virtual uint8_t* reserve(uint32_t len) = 0;
    // Send the pending burst; what the port does not take is freed and counted.
    virtual void flush() = 0;

  protected:
    ~TxPort() = default;
};

// Counters an adapter reports at the end of a run (the harness adds its own).
struct AdapterStats {
    uint64_t forwarded = 0;  // frames written to an egress port (a flood counts once per port)
    uint64_t flooded = 0;    // frames that went to every other port
    uint64_t dropped = 0;    // frames the switch dropped (no buffer, filtered, malformed, same port)
};

class SwitchAdapter {
  public:
    virtual ~SwitchAdapter() = default;
    virtual const char* name() const = 0;
    // Called once before traffic. ports[i] is DPDK port i and switch port i;
    // tsc_hz lets a switch turn `now` into ageing time. False: cannot run.
    virtual bool attach(TxPort* const* ports, int count, uint64_t tsc_hz) = 0;
    // A burst from in_port begins; `now` is the TSC when it was received.
    virtual void begin_burst(int in_port, uint64_t now) = 0;
    // One received frame; its bytes are valid only during the call.
    virtual void forward(int in_port, const uint8_t* frame, uint32_t len) = 0;
    // The burst from in_port is over: send what was queued for every egress port.
    virtual void end_burst(int in_port) = 0;
    virtual AdapterStats stats() const = 0;
};

// A trivial learning bridge kept in the harness itself, only to prove that the
// harness works end to end (and to give the cost of the harness's copy with
// almost no switching logic). Not the product.
std::unique_ptr<SwitchAdapter> make_reference_adapter();

// Our switch core (kernel/net/), the same source the hypervisor runs; nullptr
// when this build has no switch core yet (see tests/bench/CMakeLists.txt).
std::unique_ptr<SwitchAdapter> make_hv_adapter();

}  // namespace hv::bench
