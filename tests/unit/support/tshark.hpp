#pragma once
// Reads a capture file with tshark (Wireshark's command-line reader), the
// independent check that the pcap files the switch writes open in real tools
// (issue #4). tshark missing is a test failure, never a skip.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hv::test {

// Writes data to a new file in a fresh temporary directory; returns its path.
std::string write_temp_file(const std::string& name, const uint8_t* data, size_t len);

// `tshark -r path -T fields -e F1 -e F2 ...`: one string per packet, fields
// separated by tabs. Adds a gtest failure (and returns what it got) when
// tshark is not installed or exits with an error.
std::vector<std::string> tshark_fields(const std::string& path, const std::vector<std::string>& fields);

}  // namespace hv::test
