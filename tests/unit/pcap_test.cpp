// The pcap writer: file and record headers byte for byte (pcap-savefile(5)),
// snaplen truncation, a full buffer, reset, and tshark reading the result.
#include "kernel/net/pcap.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/support/pcap_reader.hpp"
#include "tests/unit/support/tshark.hpp"

using hv::net::PcapWriter;

namespace {

std::vector<uint8_t> ethernet_frame(uint8_t dst_last, uint8_t src_last, size_t len, bool tagged, uint16_t vid = 0) {
    std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, dst_last, 0x02, 0, 0, 0, 0, src_last};
    if (tagged) {
        f.insert(f.end(), {0x81, 0x00, static_cast<uint8_t>(vid >> 8), static_cast<uint8_t>(vid)});
    }
    f.insert(f.end(), {0x08, 0x00});  // IPv4 ethertype; the payload is not parsed further by the checks
    while (f.size() < len) f.push_back(static_cast<uint8_t>(f.size()));
    return f;
}

}  // namespace

TEST(PcapWriter, FileHeaderIsClassicPcapEthernet) {
    uint8_t buf[64];
    PcapWriter w;
    ASSERT_TRUE(w.init(buf, sizeof buf, 1500).ok());
    auto b = w.bytes();
    ASSERT_EQ(b.len, 24u);
    const uint8_t expected[24] = {0xd4, 0xc3, 0xb2, 0xa1,  // magic 0xa1b2c3d4, little-endian
                                  2,    0,    4,    0,     // version 2.4
                                  0,    0,    0,    0,     // thiszone
                                  0,    0,    0,    0,     // sigfigs
                                  0xdc, 0x05, 0,    0,     // snaplen 1500
                                  1,    0,    0,    0};    // LINKTYPE_ETHERNET
    EXPECT_EQ(std::vector<uint8_t>(b.data, b.data + b.len), std::vector<uint8_t>(expected, expected + 24));
}

TEST(PcapWriter, InitRejectsBadArguments) {
    uint8_t buf[64];
    PcapWriter w;
    EXPECT_FALSE(w.init(nullptr, 64).ok());
    EXPECT_FALSE(w.init(buf, 23).ok());
    EXPECT_FALSE(w.init(buf, sizeof buf, 0).ok());
    EXPECT_FALSE(w.init(buf, sizeof buf, PcapWriter::kMaxSnaplen + 1).ok());
    EXPECT_FALSE(w.active());
    uint32_t incl;
    EXPECT_EQ(w.begin_record(0, 60, &incl), nullptr);  // not initialized: dropped
    EXPECT_TRUE(w.init(buf, 24, PcapWriter::kMaxSnaplen).ok());
}

TEST(PcapWriter, RecordsCarryTimestampLengthsAndTruncatedBytes) {
    std::vector<uint8_t> buf(1024);
    PcapWriter w;
    ASSERT_TRUE(w.init(buf.data(), buf.size(), 32).ok());
    auto small = ethernet_frame(1, 2, 20, false);
    auto big = ethernet_frame(3, 4, 100, false);
    ASSERT_TRUE(w.append(1'234'567'891'234ull, small.data(), 20));  // 1234 s, 567891 us (ns cut)
    ASSERT_TRUE(w.append(5'000'000'999ull, big.data(), 100));
    EXPECT_EQ(w.records(), 2u);
    EXPECT_EQ(w.truncated(), 1u);
    EXPECT_EQ(w.bytes().len, 24u + 16 + 20 + 16 + 32);

    auto f = hv::test::parse_pcap(w.bytes().data, w.bytes().len);
    ASSERT_TRUE(f.ok);
    ASSERT_EQ(f.records.size(), 2u);
    EXPECT_EQ(f.records[0].ts_sec, 1234u);
    EXPECT_EQ(f.records[0].ts_usec, 567891u);
    EXPECT_EQ(f.records[0].incl_len, 20u);
    EXPECT_EQ(f.records[0].orig_len, 20u);
    EXPECT_EQ(f.records[0].data, small);
    EXPECT_EQ(f.records[1].ts_sec, 5u);
    EXPECT_EQ(f.records[1].ts_usec, 0u);
    EXPECT_EQ(f.records[1].incl_len, 32u);
    EXPECT_EQ(f.records[1].orig_len, 100u);
    EXPECT_EQ(f.records[1].data, std::vector<uint8_t>(big.begin(), big.begin() + 32));
}

TEST(PcapWriter, FullBufferDropsAndCountsEveryLaterRecord) {
    // Room for the header and exactly two 60-byte records.
    std::vector<uint8_t> buf(24 + 2 * (16 + 60));
    PcapWriter w;
    ASSERT_TRUE(w.init(buf.data(), buf.size()).ok());
    auto frame = ethernet_frame(1, 2, 60, false);
    EXPECT_TRUE(w.append(1, frame.data(), 60));
    EXPECT_TRUE(w.append(2, frame.data(), 60));
    EXPECT_FALSE(w.append(3, frame.data(), 60));
    // Even a record that would still fit is dropped: the file stays a prefix of the traffic.
    EXPECT_FALSE(w.append(4, frame.data(), 0));
    EXPECT_EQ(w.records(), 2u);
    EXPECT_EQ(w.dropped(), 2u);
    EXPECT_EQ(w.bytes().len, buf.size());
    auto f = hv::test::parse_pcap(w.bytes().data, w.bytes().len);
    EXPECT_TRUE(f.ok);
    EXPECT_EQ(f.records.size(), 2u);

    w.reset();
    EXPECT_EQ(w.bytes().len, 24u);
    EXPECT_EQ(w.records(), 0u);
    EXPECT_EQ(w.dropped(), 0u);
    EXPECT_TRUE(w.append(5, frame.data(), 60));
    f = hv::test::parse_pcap(w.bytes().data, w.bytes().len);
    ASSERT_TRUE(f.ok);
    ASSERT_EQ(f.records.size(), 1u);
    EXPECT_EQ(f.records[0].ts_sec, 0u);
    EXPECT_EQ(f.records[0].data, frame);
}

TEST(PcapWriter, BeginRecordHandsOutExactlyTheIncludedBytes) {
    std::vector<uint8_t> buf(256);
    PcapWriter w;
    ASSERT_TRUE(w.init(buf.data(), buf.size(), 40).ok());
    uint32_t incl = 0;
    uint8_t* dst = w.begin_record(7'000'000'000ull, 1500, &incl);
    ASSERT_NE(dst, nullptr);
    EXPECT_EQ(incl, 40u);
    for (uint32_t i = 0; i < incl; ++i) dst[i] = static_cast<uint8_t>(0xA0 + i);
    auto f = hv::test::parse_pcap(w.bytes().data, w.bytes().len);
    ASSERT_TRUE(f.ok);
    ASSERT_EQ(f.records.size(), 1u);
    EXPECT_EQ(f.records[0].orig_len, 1500u);
    EXPECT_EQ(f.records[0].ts_sec, 7u);
    EXPECT_EQ(f.records[0].data[39], 0xA0 + 39);
}

TEST(PcapWriter, TsharkReadsLengthsAddressesAndVlanIds) {
    std::vector<uint8_t> buf(8192);
    PcapWriter w;
    ASSERT_TRUE(w.init(buf.data(), buf.size(), 96).ok());
    struct Case {
        uint8_t dst, src;
        size_t len;
        bool tagged;
        uint16_t vid;
        const char* expected;  // frame.len, eth.src, eth.dst, vlan.id
    } cases[] = {
        {0x0b, 0x0a, 60, false, 0, "60\t02:00:00:00:00:0a\t02:00:00:00:00:0b\t"},
        {0x0a, 0x0b, 64, true, 42, "64\t02:00:00:00:00:0b\t02:00:00:00:00:0a\t42"},
        // Longer than snaplen: tshark reports the original length.
        {0x0c, 0x0d, 1514, false, 0, "1514\t02:00:00:00:00:0d\t02:00:00:00:00:0c\t"},
        {0x0d, 0x0c, 1518, true, 4094, "1518\t02:00:00:00:00:0c\t02:00:00:00:00:0d\t4094"},
    };
    uint64_t t = 1'700'000'000'000'000'000ull;
    for (const auto& c : cases) {
        auto frame = ethernet_frame(c.dst, c.src, c.len, c.tagged, c.vid);
        ASSERT_TRUE(w.append(t, frame.data(), static_cast<uint32_t>(frame.size())));
        t += 1000;
    }
    std::string path = hv::test::write_temp_file("writer.pcap", w.bytes().data, w.bytes().len);
    auto lines = hv::test::tshark_fields(path, {"frame.len", "eth.src", "eth.dst", "vlan.id"});
    ASSERT_EQ(lines.size(), std::size(cases));
    for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i], cases[i].expected) << "record " << i;
    // And the timestamps: 1.7e9 s plus 1 us steps.
    auto times = hv::test::tshark_fields(path, {"frame.time_epoch"});
    ASSERT_EQ(times.size(), std::size(cases));
    EXPECT_EQ(times[0].substr(0, 17), "1700000000.000000");
    EXPECT_EQ(times[3].substr(0, 17), "1700000000.000003");
}
