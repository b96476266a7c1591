#pragma once
// A sender's batch: created on the stack by the port that processes a TX
// notification, one forward() per frame, one finish() at the end (also run
// by the destructor). Per frame the switch only calls the receivers'
// deliver(); finish() then calls flush() once on every receiver that got a
// frame (one EVENT_IDX notification for the whole batch) and adds each
// receiver's tx and no_buffer counts once, to the sender's own row of egress
// counters (Switch::EgressCounters), instead of once per frame on a line every
// sender writes.

#include <stdint.h>

#include "kernel/net/frame.hpp"
#include "kernel/net/switch.hpp"

namespace hv::net {

class TxBatch {
  public:
    explicit TxBatch(Switch& sw) : sw_(sw) {}
    ~TxBatch() { finish(); }
    TxBatch(const TxBatch&) = delete;
    TxBatch& operator=(const TxBatch&) = delete;

    // A batch has one sender: a frame from another port first finishes the batch.
    void forward(PortId in, const FrameView& frame, uint64_t now_ns) {
        if (in != sender_) {
            if (touched_ != 0) finish();
            sender_ = in;
        }
        sw_.forward_one(*this, in, frame, now_ns);
    }
    // Flushes and accounts everything so far; the batch may then be reused.
    void finish();

  private:
    friend class Switch;
    void account(PortId port, DeliverResult r, uint32_t len) {
        uint32_t bit = 1u << port;
        if (!(touched_ & bit)) {
            touched_ |= bit;
            packets_[port] = 0;
            no_buffer_[port] = 0;
            bytes_[port] = 0;
        }
        if (r == DeliverResult::delivered) {
            ++packets_[port];
            bytes_[port] += len;
        } else {
            ++no_buffer_[port];
        }
    }

    Switch& sw_;
    PortId sender_ = kNoPort;
    uint32_t touched_ = 0;  // bit p: the arrays below hold port p's counts
    // Per receiver; valid only where touched_ says so (not cleared per batch).
    uint64_t packets_[kMaxPorts];
    uint64_t no_buffer_[kMaxPorts];
    uint64_t bytes_[kMaxPorts];
};

}  // namespace hv::net
