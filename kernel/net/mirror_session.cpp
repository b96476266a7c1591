#include "kernel/net/mirror_session.hpp"

namespace hv::net {

Result<void> MirrorSession::start(uint8_t* buf, size_t cap, uint32_t snaplen) {
    LockGuard g(lock_);
    capturing_ = false;
    TRY(writer_.init(buf, cap, snaplen));
    capturing_ = true;
    return ok_result();
}

void MirrorSession::stop() {
    LockGuard g(lock_);
    capturing_ = false;
}

void MirrorSession::reset() {
    LockGuard g(lock_);
    writer_.reset();
}

void MirrorSession::capture(const OutFrame& f, uint64_t now_ns) {
    LockGuard g(lock_);
    if (!capturing_) return;
    uint32_t incl;
    uint8_t* dst = writer_.begin_record(now_ns, f.len(), &incl);
    if (dst == nullptr) return;
    uint32_t got = copy_out(f, 0, dst, incl);
    if (got < incl) __builtin_memset(dst + got, 0, incl - got);  // never stale buffer bytes in a record
}

MirrorStats MirrorSession::stats() const {
    LockGuard g(lock_);
    MirrorStats s;
    s.capturing = capturing_;
    s.snaplen = writer_.active() ? writer_.snaplen() : 0;
    s.records = writer_.records();
    s.dropped = writer_.dropped();
    s.truncated = writer_.truncated();
    s.file_bytes = writer_.bytes().len;
    return s;
}

PcapWriter::Bytes MirrorSession::file() const {
    LockGuard g(lock_);
    return writer_.bytes();
}

}  // namespace hv::net
