#pragma once
// The contract between the switch and its ports (guest virtio-net devices now,
// an uplink NIC later). Pure: no hardware, no kernel globals.
//
// Data path (issue #4): a frame is copied exactly once, from the sender's TX
// buffers into the receiver's RX buffers. The switch never holds frame bytes
// of its own except the Ethernet header: it copies the first bytes of every
// frame out of the sender's memory ONCE, makes every decision (source MAC,
// VLAN tag, destination) on that private copy, and hands receivers that copy
// as the head of the frame. A sender on another CPU that rewrites its buffer
// while the switch works cannot change what was checked (STYLE.md §12).

#include <stddef.h>
#include <stdint.h>

namespace hv::net {

inline constexpr uint32_t kEthHeaderLen = 14;                 // dst, src, ethertype
inline constexpr uint32_t kVlanTagLen = 4;                    // 802.1Q TPID + TCI
inline constexpr uint32_t kMinFrameLen = 14;                  // shorter frames are malformed
inline constexpr uint32_t kMaxFrameLen = 1514 + kVlanTagLen;  // MTU 1500, optional tag, no FCS
inline constexpr uint32_t kMaxSegments = 64;                  // per frame; longer chains are malformed

using PortId = uint16_t;
inline constexpr PortId kNoPort = 0xFFFF;

// One piece of a frame in the sender's memory (already bounds-checked against
// the sender's RAM by whoever built the view).
struct Segment {
    const uint8_t* data;
    uint32_t len;
};

// A frame as it lies in the sender's memory: a scatter list, `len` bytes in all.
struct FrameView {
    const Segment* segs;
    uint32_t count;
    uint32_t len;
};

// A frame on its way to one receiver: `head` (head_len bytes) is the switch's
// private, validated header for THIS egress port (VLAN tag already inserted
// or removed); the remaining bytes are src's bytes from src_offset to its end.
struct OutFrame {
    const uint8_t* head;
    uint32_t head_len;
    FrameView src;
    uint32_t src_offset;

    uint32_t len() const { return head_len + (src.len - src_offset); }
};

// Copies bytes [offset, offset + n) of the outgoing frame to dst; returns the
// number copied (less than n only at the end of the frame).
uint32_t copy_out(const OutFrame& f, uint32_t offset, uint8_t* dst, uint32_t n);

// Copies bytes [offset, offset + n) of a sender's frame to dst; returns the
// number copied (less than n only at the end of the frame: `len` or the end of
// the last segment, whichever comes first). Never reads outside a segment.
uint32_t copy_view(const FrameView& f, uint32_t offset, uint8_t* dst, uint32_t n);

enum class DeliverResult : uint8_t {
    delivered,
    no_buffer,  // the receiver had no (or too few) RX buffers: dropped, counted at the receiver
    down,       // the receiving device is not running (reset, broken, guest stopped)
};
const char* deliver_result_name(DeliverResult r);

// Implemented by each port's device. deliver() and flush() may be called from
// any CPU at any time, concurrently with each other and with the device's own
// guest; the implementation serializes internally (a lock per device queue).
class PortDriver {
  public:
    // Copy the frame into the receiver's RX buffers and make them used.
    virtual DeliverResult deliver(const OutFrame& f) = 0;
    // End of a sender's batch: notify the receiver's guest if it asked to be
    // notified (EVENT_IDX), once for everything delivered since the last flush.
    virtual void flush() = 0;

  protected:
    ~PortDriver() = default;
};

}  // namespace hv::net
