#include "kernel/net/tx_batch.hpp"

namespace hv::net {

void TxBatch::finish() {
    uint32_t touched = touched_;
    touched_ = 0;
    if (touched == 0 || sender_ >= kMaxPorts) return;
    Switch::EgressCounters* row = sw_.ports_[sender_].sent_to;
    while (touched) {
        PortId p = static_cast<PortId>(__builtin_ctz(touched));
        touched &= touched - 1;
        Switch::EgressCounters& c = row[p];
        if (packets_[p] != 0) {
            sw_.ports_[p].hot.driver->flush();
            Switch::bump(c.tx_packets, packets_[p]);
            Switch::bump(c.tx_bytes, bytes_[p]);
        }
        if (no_buffer_[p] != 0) Switch::bump(c.no_buffer, no_buffer_[p]);
    }
}

}  // namespace hv::net
