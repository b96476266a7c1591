#include "kernel/virtio/virtqueue.hpp"

#include <bit>

namespace hv::virtio {

namespace {

// Virtio 1.x rings are little-endian (§2.7) and so is x86: fields are loaded
// and stored natively, each with one access the compiler may not split or
// repeat (the driver on another CPU can change them at any moment).
static_assert(std::endian::native == std::endian::little);

template <typename T>
T read_once(const uint8_t* p) {
    return __atomic_load_n(reinterpret_cast<const T*>(p), __ATOMIC_RELAXED);
}

template <typename T>
void write_once(uint8_t* p, T v) {
    __atomic_store_n(reinterpret_cast<T*>(p), v, __ATOMIC_RELAXED);
}

bool aligned(const uint8_t* p, uintptr_t a) {
    return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0;
}

}  // namespace

bool SplitQueue::bind(const guest::GuestMemory& mem, const QueueConfig& cfg, QueueDirection dir, bool event_idx) {
    unbind();
    const uint16_t n = cfg.size;
    // Free-running u16 indices work modulo the size only for a power of two
    // up to 32768 (§2.7: "Queue Size ... maximum 32768").
    if (n == 0 || n > 32768 || (n & (n - 1)) != 0) return false;
    // §2.7.1 alignment; the guest-physical checks repeat the core's, the
    // host-pointer ones make the aligned atomic accesses below legal.
    if (cfg.desc % 16 != 0 || cfg.driver % 2 != 0 || cfg.device % 4 != 0) return false;
    uint8_t* d = mem.at(cfg.desc, uint64_t{sizeof(VirtqDesc)} * n);
    uint8_t* a = mem.at(cfg.driver, avail_ring_bytes(n));
    uint8_t* u = mem.at(cfg.device, used_ring_bytes(n));
    if (d == nullptr || a == nullptr || u == nullptr) return false;
    if (!aligned(d, 16) || !aligned(a, 2) || !aligned(u, 4)) return false;

    mem_ = mem;
    desc_ = d;
    avail_ = a;
    used_ = u;
    size_ = n;
    dir_ = dir;
    event_idx_ = event_idx;
    // The used ring is written only by the device (§2.7.8): start it from a
    // known state rather than trusting what the driver left there.
    write_once<uint16_t>(used_ + kRingFlagsOff, 0);
    write_once<uint16_t>(used_ + kRingEntriesOff + kUsedEntrySize * n, 0);
    __atomic_store_n(reinterpret_cast<uint16_t*>(used_ + kRingIdxOff), uint16_t{0}, __ATOMIC_RELEASE);
    return true;
}

void SplitQueue::unbind() {
    mem_ = guest::GuestMemory{};
    desc_ = avail_ = used_ = nullptr;
    size_ = 0;
    event_idx_ = false;
    error_ = BrokenReason::none;
    last_avail_ = avail_shadow_ = used_idx_ = published_ = signalled_ = 0;
}

PopStatus SplitQueue::fail(BrokenReason r) {
    error_ = r;
    return PopStatus::broken;
}

uint16_t SplitQueue::load_avail_idx() const {
    // Acquire: the ring entries and descriptors the driver wrote before
    // publishing this index are read after it (§2.7.13, the driver's wmb).
    return __atomic_load_n(reinterpret_cast<const uint16_t*>(avail_ + kRingIdxOff), __ATOMIC_ACQUIRE);
}

PopStatus SplitQueue::pop(Chain& out) {
    if (error_ != BrokenReason::none) return PopStatus::broken;
    if (!bound()) return PopStatus::empty;
    if (last_avail_ == avail_shadow_) {
        const uint16_t idx = load_avail_idx();
        // §2.7, §2.7.13: at most Queue Size buffers can be queued, so
        // avail.idx never runs further ahead of us; a larger jump is garbage.
        if (static_cast<uint16_t>(idx - last_avail_) > size_) return fail(BrokenReason::bad_avail_index);
        avail_shadow_ = idx;
        if (idx == last_avail_) return PopStatus::empty;
    }
    const uint16_t mask = static_cast<uint16_t>(size_ - 1);
    const uint16_t head = read_once<uint16_t>(avail_ + kRingEntriesOff + kAvailEntrySize * (last_avail_ & mask));
    if (head >= size_) return fail(BrokenReason::bad_descriptor);

    // §2.7.5: the queue size is the longest possible chain; §2.7.4.1 lets the
    // device have a lower limit (kMaxChainBuffers). Every step counts, so a
    // loop ends as chain_too_long.
    const uint16_t max = size_ < kMaxChainBuffers ? size_ : kMaxChainBuffers;
    out.head = head;
    out.count = 0;
    out.bytes = 0;
    uint16_t i = head;
    for (;;) {
        // Copy the descriptor out once, then check only the copy.
        const uint8_t* p = desc_ + sizeof(VirtqDesc) * i;
        const uint64_t addr = read_once<uint64_t>(p + offsetof(VirtqDesc, addr));
        const uint32_t len = read_once<uint32_t>(p + offsetof(VirtqDesc, len));
        const uint16_t flags = read_once<uint16_t>(p + offsetof(VirtqDesc, flags));
        const uint16_t next = read_once<uint16_t>(p + offsetof(VirtqDesc, next));

        // VIRTIO_F_INDIRECT_DESC is not offered (§2.7.5.3.1: the driver MUST NOT set it then).
        if (flags & VIRTQ_DESC_F_INDIRECT) return fail(BrokenReason::bad_descriptor);
        if (len == 0) return fail(BrokenReason::bad_descriptor);
        uint8_t* data = mem_.at(addr, len);  // nullptr also when addr + len wraps 2^64
        if (data == nullptr) return fail(BrokenReason::bad_descriptor);
        const bool writable = (flags & VIRTQ_DESC_F_WRITE) != 0;
        if (writable != (dir_ == QueueDirection::device_writes)) return fail(BrokenReason::bad_descriptor);

        out.buffers[out.count++] = ChainBuffer{data, len};
        out.bytes += len;
        if (!(flags & VIRTQ_DESC_F_NEXT)) break;
        if (next >= size_) return fail(BrokenReason::bad_descriptor);
        if (out.count == max) return fail(BrokenReason::chain_too_long);
        i = next;
    }
    ++last_avail_;
    return PopStatus::chain;
}

void SplitQueue::discard(uint16_t n) {
    last_avail_ = static_cast<uint16_t>(last_avail_ - n);
    // Re-read (and re-check) avail.idx on the next pop: the cached value was
    // validated against a later last_avail_.
    avail_shadow_ = last_avail_;
}

void SplitQueue::push(uint16_t head, uint32_t len) {
    if (!bound()) return;
    uint8_t* e = used_ + kRingEntriesOff + kUsedEntrySize * (used_idx_ & (size_ - 1));
    write_once<uint32_t>(e + offsetof(VirtqUsedElem, id), head);
    write_once<uint32_t>(e + offsetof(VirtqUsedElem, len), len);
    ++used_idx_;
}

void SplitQueue::unpush(uint16_t n) {
    used_idx_ = static_cast<uint16_t>(used_idx_ - n);
}

void SplitQueue::publish() {
    if (!bound() || used_idx_ == published_) return;
    // Release: the used elements are visible before the index that hands
    // them to the driver (§2.7.8.2; the device-side twin of virtio_wmb()).
    __atomic_store_n(reinterpret_cast<uint16_t*>(used_ + kRingIdxOff), used_idx_, __ATOMIC_RELEASE);
    published_ = used_idx_;
}

bool SplitQueue::should_interrupt() {
    if (!bound()) return false;
    const uint16_t old_idx = signalled_;
    const uint16_t new_idx = published_;
    signalled_ = new_idx;
    if (old_idx == new_idx) return false;
    // Full barrier: our used.idx store must be globally visible before we read
    // the driver's used_event / flags, or the driver may miss the new entries
    // and wait for an interrupt we decide not to send (store -> load order,
    // which x86 gives only with a fence; Linux: virtio_mb in kick_prepare).
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (event_idx_) {
        // §2.7.7.2: interrupt only if used_event lies in [old, new).
        const uint16_t used_event = read_once<uint16_t>(avail_ + kRingEntriesOff + kAvailEntrySize * size_);
        return vring_need_event(used_event, new_idx, old_idx);
    }
    // §2.7.7.2: without EVENT_IDX the flag decides (with it, it is ignored).
    return (read_once<uint16_t>(avail_ + kRingFlagsOff) & VIRTQ_AVAIL_F_NO_INTERRUPT) == 0;
}

void SplitQueue::disable_notifications() {
    if (!bound()) return;
    // With EVENT_IDX there is nothing to write: avail_event simply stays
    // behind and the driver, which kicks only when it crosses it, stays quiet.
    if (!event_idx_) write_once<uint16_t>(used_ + kRingFlagsOff, VIRTQ_USED_F_NO_NOTIFY);
}

bool SplitQueue::enable_notifications() {
    if (!bound() || error_ != BrokenReason::none) return false;
    if (event_idx_) {
        // §2.7.10.2: "notify me when you fill slot last_avail_".
        write_once<uint16_t>(used_ + kRingEntriesOff + kUsedEntrySize * size_, last_avail_);
    } else {
        write_once<uint16_t>(used_ + kRingFlagsOff, 0);
    }
    // The standard race: the driver may have added buffers and read our old
    // flags/avail_event before the store above became visible, and so not
    // kicked. Full barrier (store -> load), then look again.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return load_avail_idx() != last_avail_;
}

}  // namespace hv::virtio
