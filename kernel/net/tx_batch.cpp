#include "kernel/net/tx_batch.hpp"

namespace hv::net {

void TxBatch::finish() {
    uint32_t touched = touched_;
    touched_ = 0;
    while (touched) {
        PortId p = static_cast<PortId>(__builtin_ctz(touched));
        touched &= touched - 1;
        Switch::Port& port = sw_.ports_[p];
        if (packets_[p] != 0) {
            port.hot.driver->flush();
            __atomic_fetch_add(&port.out.tx_packets, packets_[p], __ATOMIC_RELAXED);
            __atomic_fetch_add(&port.out.tx_bytes, bytes_[p], __ATOMIC_RELAXED);
        }
        if (no_buffer_[p] != 0) __atomic_fetch_add(&port.out.no_buffer, no_buffer_[p], __ATOMIC_RELAXED);
    }
}

}  // namespace hv::net
