#pragma once
// One mirror session: copies of the frames of the ports that name it, stored
// as a pcap file in a buffer the caller owns (issue #4: read out as a file
// that tcpdump/tshark open). Copying here is the one extra copy the data path
// makes, and only for mirrored ports. Captures from several forwarding CPUs
// serialize on the session's own lock, never on the switch's.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/result.hpp"
#include "kernel/lib/spinlock.hpp"
#include "kernel/net/frame.hpp"
#include "kernel/net/pcap.hpp"

namespace hv::net {

struct MirrorStats {
    bool capturing = false;
    uint32_t snaplen = 0;
    uint64_t records = 0;     // frames in the file
    uint64_t dropped = 0;     // frames that did not fit in the buffer
    uint64_t truncated = 0;   // frames cut to snaplen
    uint64_t file_bytes = 0;  // size of the pcap file so far
};

class MirrorSession {
  public:
    // Starts a new capture file in buf[0, cap). The buffer must stay valid
    // until stop() returns.
    Result<void> start(uint8_t* buf, size_t cap, uint32_t snaplen);
    // No capture after this returns; the file stays readable.
    void stop();
    // Empties the file (keeps capturing if it was).
    void reset();
    // Appends f (head and tail gathered) stamped with now_ns, if capturing.
    void capture(const OutFrame& f, uint64_t now_ns);

    MirrorStats stats() const;
    // The file so far. Appends only extend it; reset() or start() rewrites it.
    PcapWriter::Bytes file() const;

  private:
    mutable Spinlock lock_;
    PcapWriter writer_;
    bool capturing_ = false;
};

}  // namespace hv::net
