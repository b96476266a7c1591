#include "kernel/lib/result.hpp"

namespace hv {

const char* errc_name(Errc c) {
    switch (c) {
        case Errc::ok: return "ok";
        case Errc::invalid_argument: return "invalid_argument";
        case Errc::bad_checksum: return "bad_checksum";
        case Errc::bad_signature: return "bad_signature";
        case Errc::truncated: return "truncated";
        case Errc::malformed: return "malformed";
        case Errc::unsupported: return "unsupported";
        case Errc::not_found: return "not_found";
        case Errc::no_memory: return "no_memory";
        case Errc::unmapped: return "unmapped";
        case Errc::overlap: return "overlap";
        case Errc::timeout: return "timeout";
        case Errc::hardware: return "hardware";
    }
    return "unknown";
}

}  // namespace hv
