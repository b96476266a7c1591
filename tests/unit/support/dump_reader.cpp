#include "tests/unit/support/dump_reader.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace hv::test {

namespace {

// Splits `hv.event key=value key="quoted \"value\""` per docs/console.md:
// quoted values may contain spaces and use \" \\ and \xNN escapes.
std::map<std::string, std::string> parse_fields(const std::string& line) {
    std::map<std::string, std::string> out;
    size_t i = line.find(' ');
    while (i != std::string::npos && i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        std::string key = line.substr(i, eq - i);
        std::string value;
        size_t j = eq + 1;
        if (j < line.size() && line[j] == '"') {
            for (++j; j < line.size() && line[j] != '"'; ++j) {
                if (line[j] == '\\' && j + 1 < line.size()) {
                    char c = line[++j];
                    if (c == 'x' && j + 2 < line.size()) {
                        value += static_cast<char>(std::stoi(line.substr(j + 1, 2), nullptr, 16));
                        j += 2;
                    } else {
                        value += c;
                    }
                } else {
                    value += line[j];
                }
            }
            ++j;  // closing quote
        } else {
            size_t end = line.find(' ', j);
            value = line.substr(j, end == std::string::npos ? std::string::npos : end - j);
            j = end == std::string::npos ? line.size() : end;
        }
        out[key] = value;
        i = j;
    }
    return out;
}

std::vector<uint8_t> parse_hex(const std::string& hex) {
    std::vector<uint8_t> out;
    if (hex.size() % 2 != 0) return out;
    for (size_t i = 0; i < hex.size(); i += 2)
        out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    return out;
}

}  // namespace

DumpReader DumpReader::load(const std::string& name) {
    std::string path = name.empty() || name[0] == '/' ? name : std::string(HV_TEST_DATA) + "/" + name;
    std::ifstream f(path);
    if (!f) {
        ADD_FAILURE() << "cannot open test data " << path;
        return {};
    }
    DumpReader r;
    std::string line;
    while (std::getline(f, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.rfind("hv.dump.meta ", 0) == 0) {
            for (auto& [k, v] : parse_fields(line)) r.meta_[k] = v;
        } else if (line.rfind("hv.dump ", 0) == 0) {
            auto fields = parse_fields(line);
            uint64_t addr = std::stoull(fields["addr"], nullptr, 16);
            r.add(addr, parse_hex(fields["data"]));
        }
    }
    return r;
}

void DumpReader::add(uint64_t addr, const std::vector<uint8_t>& bytes) {
    if (bytes.empty()) return;
    // Write byte-wise into an existing chunk when it covers the range, else merge.
    uint64_t end = addr + bytes.size();
    std::vector<uint8_t> merged;
    uint64_t mstart = addr;
    auto it = chunks_.upper_bound(addr);
    if (it != chunks_.begin()) {
        auto prev = std::prev(it);
        if (prev->first + prev->second.size() >= addr) it = prev;
    }
    // Collect all chunks that touch [addr, end].
    std::vector<std::map<uint64_t, std::vector<uint8_t>>::iterator> touching;
    for (; it != chunks_.end() && it->first <= end; ++it) touching.push_back(it);
    uint64_t mend = end;
    for (auto& t : touching) {
        mstart = std::min(mstart, t->first);
        mend = std::max<uint64_t>(mend, t->first + t->second.size());
    }
    merged.assign(mend - mstart, 0);
    for (auto& t : touching) std::copy(t->second.begin(), t->second.end(), merged.begin() + (t->first - mstart));
    std::copy(bytes.begin(), bytes.end(), merged.begin() + (addr - mstart));
    for (auto& t : touching) chunks_.erase(t);
    chunks_[mstart] = std::move(merged);
}

const uint8_t* DumpReader::view(uint64_t phys, uint64_t len) const {
    uint64_t end;
    if (__builtin_add_overflow(phys, len, &end)) return nullptr;
    auto it = chunks_.upper_bound(phys);
    if (it == chunks_.begin()) return nullptr;
    --it;
    if (end > it->first + it->second.size()) return nullptr;
    return it->second.data() + (phys - it->first);
}

uint8_t* DumpReader::mutable_view(uint64_t phys, uint64_t len) {
    return const_cast<uint8_t*>(view(phys, len));
}

std::optional<std::string> DumpReader::meta(const std::string& key) const {
    auto it = meta_.find(key);
    if (it == meta_.end()) return std::nullopt;
    return it->second;
}

std::optional<uint64_t> DumpReader::meta_number(const std::string& key) const {
    auto v = meta(key);
    if (!v) return std::nullopt;
    return std::stoull(*v, nullptr, 0);
}

void put_u8(std::vector<uint8_t>& b, size_t off, uint8_t v) {
    if (b.size() < off + 1) b.resize(off + 1);
    b[off] = v;
}
void put_u16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
    for (int i = 0; i < 2; ++i) put_u8(b, off + i, static_cast<uint8_t>(v >> (8 * i)));
}
void put_u32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
    for (int i = 0; i < 4; ++i) put_u8(b, off + i, static_cast<uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& b, size_t off, uint64_t v) {
    for (int i = 0; i < 8; ++i) put_u8(b, off + i, static_cast<uint8_t>(v >> (8 * i)));
}
void fix_checksum(std::vector<uint8_t>& b, size_t len, size_t checksum_off) {
    b[checksum_off] = 0;
    uint8_t s = 0;
    for (size_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + b[i]);
    b[checksum_off] = static_cast<uint8_t>(-s);
}

}  // namespace hv::test
