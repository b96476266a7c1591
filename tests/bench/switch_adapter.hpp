#pragma once
// The seat a switch takes in the DPDK forwarding harness (dpdk_switch.cpp,
// `tools/hv bench net`). The harness receives bursts from DPDK memif ports on
// one forwarding core and hands every frame to the switch under test through
// this interface; the switch sends frames out through the harness's TxPort of
// each egress port. Nothing here depends on DPDK, so an adapter only knows
// bytes, the way the hypervisor's switch only knows guest buffers.
//
// Cost model: the harness's RX already copied each frame out of the sender's
// memif ring into an mbuf, and its TX copies the mbuf into the receiver's ring.
// Those two copies stand for the two crossings of a port boundary that every
// switch in this seat pays, ours included (OVS-DPDK pays the same two on
// vhost-user ports: dequeue and enqueue). Inside the hypervisor our data path
// makes ONE copy, sender's TX buffers straight into the receiver's RX buffers
// (issue #4), so here the fair seat forwards an unchanged frame with pass():
// memif TX then makes the copy into the receiver's ring. A frame the switch
// changed on its way (802.1Q tag added, removed or rewritten) is written once
// into a buffer from reserve(). The "hv-copy" adapter writes every frame
// through reserve(): three copies per frame, a lower bound kept for
// comparison. testpmd io-forwarding makes no copy of its own and no decision,
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
    // Appends the received frame being forwarded, as is (no copy): `frame` and
    // `len` are exactly what the adapter's forward() was given. A flooded frame
    // may be passed to several ports. False when it cannot be queued (the
    // caller drops the frame and counts it) or is not the frame being forwarded.
    virtual bool pass(const uint8_t* frame, uint32_t len) = 0;
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
// copy_all: write every egress frame through reserve() ("hv-copy"), instead
// of pass() for frames the switch did not change ("hv").
std::unique_ptr<SwitchAdapter> make_hv_adapter(bool copy_all = false);

}  // namespace hv::bench
