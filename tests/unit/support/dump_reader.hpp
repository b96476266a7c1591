#pragma once
// DumpReader: a PhysReader over physical memory captured from a real boot.
//
// The hypervisor, booted with `hv.dump=acpi,mbi`, prints the bytes of the
// structures it parses as console lines (docs/console.md):
//   hv.dump.meta key=value ...
//   hv.dump region=<name> addr=0x<hex> data=<hex bytes>
// tools/capture-data saves those lines under tests/data/<source>.dump; this class
// loads such a file and serves the bytes at their original physical addresses,
// so unit tests run the parsers over exactly what the firmware produced.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kernel/lib/phys_reader.hpp"

namespace hv::test {

class DumpReader final : public PhysReader {
  public:
    // Loads tests/data/<name> (or an absolute path). Aborts the test on failure.
    static DumpReader load(const std::string& name);

    // Adds or overwrites bytes at `addr` (for synthetic tables in tests).
    void add(uint64_t addr, const std::vector<uint8_t>& bytes);

    const uint8_t* view(uint64_t phys, uint64_t len) const override;
    // Writable view, for tests that corrupt captured data on purpose.
    uint8_t* mutable_view(uint64_t phys, uint64_t len);

    // Value of a key from the hv.dump.meta lines, parsed as a number (0x.. or decimal).
    std::optional<uint64_t> meta_number(const std::string& key) const;
    std::optional<std::string> meta(const std::string& key) const;

  private:
    // Non-overlapping chunks keyed by start address; adjacent lines are merged.
    std::map<uint64_t, std::vector<uint8_t>> chunks_;
    std::map<std::string, std::string> meta_;
};

// Helpers for building synthetic firmware structures in tests.
void put_u8(std::vector<uint8_t>& b, size_t off, uint8_t v);
void put_u16(std::vector<uint8_t>& b, size_t off, uint16_t v);
void put_u32(std::vector<uint8_t>& b, size_t off, uint32_t v);
void put_u64(std::vector<uint8_t>& b, size_t off, uint64_t v);
// Sets byte `checksum_off` so that bytes [0, len) sum to zero mod 256.
void fix_checksum(std::vector<uint8_t>& b, size_t len, size_t checksum_off);

}  // namespace hv::test
