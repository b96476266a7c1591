// The guests' network code (guests/runtime/net) and args parser, built for the
// host: encoding and decoding against byte sequences written out from RFC 826,
// 791, 792 and 768 and IEEE 802.1Q (checksums computed independently), a
// well-known IPv4 header and the classic Windows ping, and hostile inputs
// (short frames, bad lengths, IHL < 5, total length past the frame,
// fragments, bad checksums, foreign and stacked VLAN tags).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "guests/runtime/args.hpp"
#include "guests/runtime/net/addr.hpp"
#include "guests/runtime/net/arp.hpp"
#include "guests/runtime/net/checksum.hpp"
#include "guests/runtime/net/ethernet.hpp"
#include "guests/runtime/net/frames.hpp"
#include "guests/runtime/net/icmp.hpp"
#include "guests/runtime/net/ipv4.hpp"
#include "guests/runtime/net/stack.hpp"
#include "guests/runtime/net/udp.hpp"
#include "guests/runtime/net/vlan.hpp"
#include "guests/runtime/net/vlan_mux.hpp"

using namespace hvg::net;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes hex(const char* s) {
    Bytes out;
    int nibble = -1;
    for (; *s; ++s) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else
            continue;
        if (nibble < 0) {
            nibble = v;
        } else {
            out.push_back(static_cast<uint8_t>(nibble << 4 | v));
            nibble = -1;
        }
    }
    return out;
}

constexpr MacAddr kMacA{{0x02, 0, 0, 0, 0, 0x01}};
constexpr MacAddr kMacB{{0x02, 0, 0, 0, 0, 0x02}};
constexpr Ipv4Addr kIpA = Ipv4Addr::from(10, 0, 0, 1);
constexpr Ipv4Addr kIpB = Ipv4Addr::from(10, 0, 0, 2);

// Deterministic pseudo-random numbers for the mutation tests (xorshift64).
struct XorShift {
    uint64_t x;
    uint64_t operator()() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    }
};

// Records every frame the stack sends; can be told to refuse (TX ring full).
struct FakeNic {
    std::vector<Bytes> sent;
    bool refuse = false;
    static bool send(void* ctx, const uint8_t* f, size_t len) {
        auto* self = static_cast<FakeNic*>(ctx);
        if (self->refuse) return false;
        self->sent.emplace_back(f, f + len);
        return true;
    }
};

// ICMP echo request 10.0.0.1 -> 10.0.0.2, id 1, seq 7, the 32-byte Windows
// ping payload; IPv4 id 0x1c46, DF, TTL 64.
const char* kIcmpRequest =
    "02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00 00 3c 1c 46 40 00 40 01 0a 79 0a 00 00 01 0a 00 00 02"
    "08 00 4d 54 00 01 00 07 61 62 63 64 65 66 67 68 69 6a 6b 6c 6d 6e 6f 70 71 72 73 74 75 76 77 61 62 63"
    "64 65 66 67 68 69";
// The reply the stack (10.0.0.2, first IPv4 id 1) must send.
const char* kIcmpReply =
    "02 00 00 00 00 01 02 00 00 00 00 02 08 00 45 00 00 3c 00 01 40 00 40 01 26 be 0a 00 00 02 0a 00 00 01"
    "00 00 55 54 00 01 00 07 61 62 63 64 65 66 67 68 69 6a 6b 6c 6d 6e 6f 70 71 72 73 74 75 76 77 61 62 63"
    "64 65 66 67 68 69";
// UDP 10.0.0.1:40000 -> 10.0.0.2:7 "hello", IPv4 id 2, padded to 60 bytes.
const char* kUdpToEcho =
    "02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00 00 21 00 02 40 00 40 11 26 c8 0a 00 00 01 0a 00 00 02"
    "9c 40 00 07 00 0d 0b b8 68 65 6c 6c 6f 00 00 00 00 00 00 00 00 00 00 00 00 00";
const char* kUdpEchoReply =
    "02 00 00 00 00 01 02 00 00 00 00 02 08 00 45 00 00 21 00 01 40 00 40 11 26 c9 0a 00 00 02 0a 00 00 01"
    "00 07 9c 40 00 0d 0b b8 68 65 6c 6c 6f 00 00 00 00 00 00 00 00 00 00 00 00 00";
// RFC 826 request: who has 10.0.0.2? tell 10.0.0.1 (00:11:22:33:44:55), padded.
const char* kArpRequest =
    "ff ff ff ff ff ff 00 11 22 33 44 55 08 06 00 01 08 00 06 04 00 01 00 11 22 33 44 55 0a 00 00 01"
    "00 00 00 00 00 00 0a 00 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";
const char* kArpReply =
    "00 11 22 33 44 55 02 00 00 00 00 02 08 06 00 01 08 00 06 04 00 02 02 00 00 00 00 02 0a 00 00 02"
    "00 11 22 33 44 55 0a 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";

}  // namespace

// ---- checksum ----

TEST(GuestNetChecksum, WellKnownIpv4HeaderVerifiesToZero) {
    // The IPv4 header used as the checksum example on countless pages
    // (192.168.0.1 -> 192.168.0.199, UDP, checksum 0xb861).
    Bytes h = hex("45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7");
    EXPECT_EQ(checksum(h.data(), h.size()), 0);
    h[10] = h[11] = 0;
    EXPECT_EQ(checksum(h.data(), h.size()), 0xb861);
}

TEST(GuestNetChecksum, Rfc1071ExampleAndOddLength) {
    // RFC 1071 §3 example words 0001 f203 f4f5 f6f7: sum 0xddf2, checksum 0x220d.
    Bytes w = hex("00 01 f2 03 f4 f5 f6 f7");
    EXPECT_EQ(checksum_finish(checksum_add(0, w.data(), w.size())), 0x220d);
    // Split sums chain; an odd last chunk is padded with zero.
    uint32_t s = checksum_add(0, w.data(), 4);
    s = checksum_add(s, w.data() + 4, 4);
    EXPECT_EQ(checksum_finish(s), 0x220d);
    Bytes odd = hex("01");
    EXPECT_EQ(checksum(odd.data(), 1), static_cast<uint16_t>(~0x0100));
    EXPECT_EQ(checksum(nullptr, 0), 0xFFFF);
}

// ---- addresses ----

TEST(GuestNetAddr, ParsesAndFormatsIpv4) {
    struct Case {
        const char* text;
        bool ok;
        uint32_t value;
    } cases[] = {
        {"10.0.0.1", true, 0x0A000001},
        {"255.255.255.255", true, 0xFFFFFFFF},
        {"0.0.0.0", true, 0},
        {"192.168.001.010", true, 0xC0A8010A},
        {"256.0.0.1", false, 0},
        {"1.2.3", false, 0},
        {"1.2.3.4.5", false, 0},
        {"1..2.3", false, 0},
        {"1.2.3.4 ", false, 0},
        {"", false, 0},
        {"1.2.3.1000", false, 0},
        {"-1.2.3.4", false, 0},
        {"99999999999999999999.1.1.1", false, 0},
    };
    for (const Case& c : cases) {
        Ipv4Addr a{0xDEADBEEF};
        EXPECT_EQ(parse_ipv4(c.text, strlen(c.text), &a), c.ok) << c.text;
        if (c.ok)
            EXPECT_EQ(a.value, c.value) << c.text;
        else
            EXPECT_EQ(a.value, 0xDEADBEEF) << c.text;
    }
    char buf[kIpv4TextLen];
    format_ipv4(Ipv4Addr{0xC0A8000A}, buf);
    EXPECT_STREQ(buf, "192.168.0.10");
    format_ipv4(Ipv4Addr{0xFFFFFFFF}, buf);
    EXPECT_STREQ(buf, "255.255.255.255");
}

TEST(GuestNetAddr, ParsesAndFormatsMac) {
    MacAddr m{};
    ASSERT_TRUE(parse_mac("02:AB:cd:00:11:ff", 17, &m));
    EXPECT_EQ(m, (MacAddr{{0x02, 0xAB, 0xCD, 0x00, 0x11, 0xFF}}));
    EXPECT_TRUE(parse_mac("02-00-00-00-00-01", 17, &m));
    EXPECT_FALSE(parse_mac("02:00:00:00:00:0g", 17, &m));
    EXPECT_FALSE(parse_mac("02:00:00:00:00:01:", 18, &m));
    EXPECT_FALSE(parse_mac("0200.0000.0001", 14, &m));
    EXPECT_FALSE(parse_mac("02:00:00:00:00;01", 17, &m));
    char buf[kMacTextLen];
    format_mac(MacAddr{{0x02, 0xAB, 0xCD, 0x00, 0x11, 0xFF}}, buf);
    EXPECT_STREQ(buf, "02:ab:cd:00:11:ff");
    EXPECT_TRUE(MacAddr::broadcast().is_multicast());
    EXPECT_FALSE(kMacA.is_multicast());
}

// ---- ARP ----

TEST(GuestNetArp, ParsesRfc826Request) {
    Bytes f = hex(kArpRequest);
    ArpPacket a;
    ASSERT_TRUE(parse_arp(f.data() + kEthHeaderLen, f.size() - kEthHeaderLen, &a));
    EXPECT_EQ(a.op, kArpOpRequest);
    EXPECT_EQ(a.sha, (MacAddr{{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}}));
    EXPECT_EQ(a.spa, kIpA);
    EXPECT_EQ(a.tpa, kIpB);
}

TEST(GuestNetArp, RejectsWrongTypesAndShortPackets) {
    Bytes f = hex(kArpRequest);
    uint8_t* p = f.data() + kEthHeaderLen;
    ArpPacket a;
    for (size_t len = 0; len < kArpLen; ++len) EXPECT_FALSE(parse_arp(p, len, &a)) << len;
    struct Mutation {
        size_t off;
        uint8_t value;
    } mutations[] = {{1, 6} /* htype IEEE 802 */, {2, 0x86} /* ptype IPv6 */,   {4, 8} /* hlen */,
                     {5, 16} /* plen */,          {7, 3} /* op RARP request */, {7, 0}};
    for (const Mutation& m : mutations) {
        Bytes g = f;
        g[kEthHeaderLen + m.off] = m.value;
        EXPECT_FALSE(parse_arp(g.data() + kEthHeaderLen, kArpLen, &a)) << m.off;
    }
}

TEST(GuestNetArp, StackAnswersRequestForItsAddressOnly) {
    FakeNic nic;
    Stack st(kMacB, kIpB, &FakeNic::send, &nic);
    Bytes req = hex(kArpRequest);
    RxInfo r = st.handle(req.data(), req.size(), 5);
    EXPECT_EQ(r.kind, RxKind::arp_request);
    EXPECT_TRUE(r.answered);
    ASSERT_EQ(nic.sent.size(), 1u);
    EXPECT_EQ(nic.sent[0], hex(kArpReply));
    MacAddr m;
    ASSERT_TRUE(st.resolve(kIpA, &m));  // the asker is learned (RFC 826)
    EXPECT_EQ(m, (MacAddr{{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}}));

    // For another address: not answered, sender not learned.
    req[41] = 99;
    FakeNic nic2;
    Stack st2(kMacB, kIpB, &FakeNic::send, &nic2);
    EXPECT_EQ(st2.handle(req.data(), req.size(), 5).kind, RxKind::not_for_us);
    EXPECT_TRUE(nic2.sent.empty());
    EXPECT_FALSE(st2.resolve(kIpA, &m));
}

TEST(GuestNetArp, RequestAndReplyRoundTripBetweenTwoStacks) {
    FakeNic na, nb;
    Stack a(kMacA, kIpA, &FakeNic::send, &na);
    Stack b(kMacB, kIpB, &FakeNic::send, &nb);
    ASSERT_TRUE(a.send_arp_request(kIpB));
    ASSERT_EQ(na.sent.size(), 1u);
    EXPECT_EQ(na.sent[0].size(), kEthMinFrameLen);
    EXPECT_EQ(b.handle(na.sent[0].data(), na.sent[0].size(), 1).kind, RxKind::arp_request);
    ASSERT_EQ(nb.sent.size(), 1u);
    EXPECT_EQ(a.handle(nb.sent[0].data(), nb.sent[0].size(), 2).kind, RxKind::arp_reply);
    MacAddr m;
    ASSERT_TRUE(a.resolve(kIpB, &m));
    EXPECT_EQ(m, kMacB);
}

TEST(GuestNetArp, CacheRefusesBogusEntriesAndEvictsOldest) {
    ArpCache c;
    EXPECT_FALSE(c.insert(kIpA, MacAddr{}, 1));
    EXPECT_FALSE(c.insert(kIpA, MacAddr::broadcast(), 1));
    EXPECT_FALSE(c.insert(kIpA, MacAddr{{0x01, 0, 0x5e, 0, 0, 1}}, 1));
    EXPECT_FALSE(c.insert(Ipv4Addr{0}, kMacA, 1));
    for (uint32_t k = 0; k < ArpCache::kEntries; ++k) ASSERT_TRUE(c.insert(Ipv4Addr{0x0A000100 + k}, kMacA, 100 + k));
    ASSERT_TRUE(c.insert(Ipv4Addr{0x0A000100}, kMacB, 500));  // refresh: now the newest
    ASSERT_TRUE(c.insert(kIpA, kMacA, 600));                  // evicts 10.0.1.1 (stamp 101)
    EXPECT_EQ(c.size(), ArpCache::kEntries);
    MacAddr m;
    EXPECT_FALSE(c.lookup(Ipv4Addr{0x0A000101}, &m));
    ASSERT_TRUE(c.lookup(Ipv4Addr{0x0A000100}, &m));
    EXPECT_EQ(m, kMacB);
    EXPECT_TRUE(c.lookup(kIpA, &m));
}

// ---- IPv4 ----

TEST(GuestNetIpv4, WritesTheWellKnownHeader) {
    uint8_t h[20];
    ASSERT_EQ(write_ipv4(h, sizeof h, Ipv4Addr::from(192, 168, 0, 1), Ipv4Addr::from(192, 168, 0, 199), kIpProtoUdp, 0,
                         0x73 - 20),
              20u);
    EXPECT_EQ(Bytes(h, h + 20), hex("45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7"));
    EXPECT_EQ(write_ipv4(h, 19, kIpA, kIpB, kIpProtoUdp, 0, 0), 0u);
    EXPECT_EQ(write_ipv4(h, 20, kIpA, kIpB, kIpProtoUdp, 0, 0xFFFF - 19), 0u);
}

TEST(GuestNetIpv4, ParsesAndIgnoresLinkPadding) {
    Bytes f = hex(kUdpToEcho);  // 33-byte packet in a 60-byte frame
    Ipv4Packet p;
    ASSERT_EQ(parse_ipv4(f.data() + 14, f.size() - 14, &p), Ipv4Error::ok);
    EXPECT_EQ(p.h.total_len, 0x21);
    EXPECT_EQ(p.payload_len, 13u);
    EXPECT_EQ(p.h.protocol, kIpProtoUdp);
    EXPECT_EQ(p.h.src, kIpA);
    EXPECT_EQ(p.h.dst, kIpB);
    EXPECT_EQ(p.h.id, 2);
}

TEST(GuestNetIpv4, HostileHeadersAreRejected) {
    Bytes base = hex(kIcmpRequest);
    const size_t ip_len = base.size() - 14;
    auto parse = [](Bytes f, size_t len) {
        Ipv4Packet p;
        return parse_ipv4(f.data() + 14, len, &p);
    };
    auto with = [&](size_t off, uint8_t v, bool fix_checksum) {
        Bytes f = base;
        f[14 + off] = v;
        if (fix_checksum) {
            size_t hl = static_cast<size_t>(f[14] & 0xF) * 4;
            if (hl < 20) hl = 20;
            f[24] = f[25] = 0;
            uint16_t c = checksum(f.data() + 14, hl);
            f[24] = static_cast<uint8_t>(c >> 8);
            f[25] = static_cast<uint8_t>(c);
        }
        return f;
    };
    for (size_t len = 0; len < 20; ++len) EXPECT_EQ(parse(base, len), Ipv4Error::too_short) << len;
    // The header is complete but the packet is cut: total length > bytes present.
    EXPECT_EQ(parse(base, ip_len - 1), Ipv4Error::bad_total_len);
    EXPECT_EQ(parse(with(0, 0x65, true), ip_len), Ipv4Error::bad_version);
    EXPECT_EQ(parse(with(0, 0x44, true), ip_len), Ipv4Error::bad_header_len);  // IHL 4 (< 20 bytes)
    EXPECT_EQ(parse(with(0, 0x40, true), ip_len), Ipv4Error::bad_header_len);  // IHL 0
    EXPECT_EQ(parse(with(0, 0x4F, false), 40), Ipv4Error::bad_header_len);     // 60-byte header in 40 bytes
    EXPECT_EQ(parse(with(3, 0x13, true), ip_len), Ipv4Error::bad_total_len);   // total 19 < header
    EXPECT_EQ(parse(with(3, 0xFF, true), ip_len), Ipv4Error::bad_total_len);   // total 0x00ff > frame
    EXPECT_EQ(parse(with(2, 0xFF, true), ip_len), Ipv4Error::bad_total_len);   // total 0xff3c
    EXPECT_EQ(parse(with(8, 0x01, false), ip_len), Ipv4Error::bad_checksum);   // TTL changed, checksum not
    EXPECT_EQ(parse(with(6, 0x20, true), ip_len), Ipv4Error::fragment);        // MF, offset 0
    EXPECT_EQ(parse(with(7, 0x01, true), ip_len), Ipv4Error::fragment);        // DF, offset 8
    EXPECT_EQ(parse(with(6, 0x00, true), ip_len), Ipv4Error::ok);              // DF clear: a whole packet
}

// ---- ICMP ----

TEST(GuestNetIcmp, WindowsPingChecksum) {
    // Windows ping: id 1, seq 1, "abcdefghijklmnopqrstuvwabcdefghi": checksum
    // 0x4d5a, the value every capture of it shows.
    const char* data = "abcdefghijklmnopqrstuvwabcdefghi";
    uint8_t msg[40];
    ASSERT_EQ(write_icmp_echo(msg, sizeof msg, kIcmpEchoRequest, 1, 1, reinterpret_cast<const uint8_t*>(data), 32),
              40u);
    EXPECT_EQ(msg[2], 0x4d);
    EXPECT_EQ(msg[3], 0x5a);
    IcmpEcho e;
    ASSERT_TRUE(parse_icmp_echo(msg, 40, &e));
    EXPECT_EQ(e.type, kIcmpEchoRequest);
    EXPECT_EQ(e.id, 1);
    EXPECT_EQ(e.seq, 1);
    EXPECT_EQ(e.data_len, 32u);
    EXPECT_EQ(memcmp(e.data, data, 32), 0);
    EXPECT_EQ(write_icmp_echo(msg, 39, kIcmpEchoRequest, 1, 1, reinterpret_cast<const uint8_t*>(data), 32), 0u);
}

TEST(GuestNetIcmp, HostileMessagesAreRejected) {
    Bytes f = hex(kIcmpRequest);
    uint8_t* m = f.data() + 34;
    const size_t len = f.size() - 34;
    IcmpEcho e;
    for (size_t n = 0; n < 8; ++n) EXPECT_FALSE(parse_icmp_echo(m, n, &e)) << n;
    EXPECT_FALSE(parse_icmp_echo(m, len - 1, &e));  // checksum covers every byte
    Bytes g = f;
    g[34 + 1] = 1;  // code 1
    EXPECT_FALSE(parse_icmp_echo(g.data() + 34, len, &e));
}

TEST(GuestNetIcmp, StackAnswersEchoRequestByteForByte) {
    FakeNic nic;
    Stack st(kMacB, kIpB, &FakeNic::send, &nic);
    Bytes req = hex(kIcmpRequest);
    RxInfo r = st.handle(req.data(), req.size(), 0);
    EXPECT_EQ(r.kind, RxKind::icmp_echo_request);
    EXPECT_EQ(r.echo.seq, 7);
    EXPECT_EQ(r.src_ip, kIpA);
    ASSERT_EQ(nic.sent.size(), 1u);
    EXPECT_EQ(nic.sent[0], hex(kIcmpReply));
    EXPECT_EQ(st.counters().icmp_answered, 1u);

    // The reply parses as an echo reply on the other side.
    FakeNic other;
    Stack a(kMacA, kIpA, &FakeNic::send, &other);
    RxInfo back = a.handle(nic.sent[0].data(), nic.sent[0].size(), 0);
    EXPECT_EQ(back.kind, RxKind::icmp_echo_reply);
    EXPECT_EQ(back.echo.id, 1);
    EXPECT_EQ(back.echo.seq, 7);
    EXPECT_EQ(back.echo.data_len, 32u);
    EXPECT_TRUE(other.sent.empty());
}

TEST(GuestNetIcmp, FullTxRingIsCountedNotFatal) {
    FakeNic nic;
    nic.refuse = true;
    Stack st(kMacB, kIpB, &FakeNic::send, &nic);
    Bytes req = hex(kIcmpRequest);
    RxInfo r = st.handle(req.data(), req.size(), 0);
    EXPECT_EQ(r.kind, RxKind::icmp_echo_request);
    EXPECT_FALSE(r.answered);
    EXPECT_EQ(st.counters().tx_failed, 1u);
    EXPECT_EQ(st.counters().icmp_answered, 0u);
}

// ---- UDP ----

TEST(GuestNetUdp, StackEchoesPort7WhenEnabled) {
    FakeNic nic;
    Stack st(kMacB, kIpB, &FakeNic::send, &nic);
    Bytes f = hex(kUdpToEcho);
    RxInfo r = st.handle(f.data(), f.size(), 0);
    EXPECT_EQ(r.kind, RxKind::udp);
    EXPECT_EQ(r.udp.src_port, 40000);
    EXPECT_EQ(r.udp.dst_port, 7);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.udp.data), r.udp.data_len), "hello");
    EXPECT_TRUE(r.udp.had_checksum);
    EXPECT_TRUE(nic.sent.empty());  // echo off by default

    st.set_udp_echo(true);
    r = st.handle(f.data(), f.size(), 0);
    EXPECT_TRUE(r.answered);
    ASSERT_EQ(nic.sent.size(), 1u);
    EXPECT_EQ(nic.sent[0], hex(kUdpEchoReply));
}

TEST(GuestNetUdp, BuildsWhatItParses) {
    uint8_t buf[kEthMaxFrameLen];
    Bytes payload(1472, 0);
    for (size_t k = 0; k < payload.size(); ++k) payload[k] = static_cast<uint8_t>(k * 7);
    Ipv4Endpoints ep{kMacA, kMacB, kIpA, kIpB, 9};
    size_t n = build_udp_frame(buf, sizeof buf, ep, 1234, kUdpPortDiscard, payload.data(), payload.size());
    ASSERT_EQ(n, kEthMaxFrameLen);
    EXPECT_EQ(build_udp_frame(buf, sizeof buf, ep, 1234, 9, payload.data(), payload.size() + 1), 0u);

    FakeNic nic;
    Stack b(kMacB, kIpB, &FakeNic::send, &nic);
    RxInfo r = b.handle(buf, n, 0);
    ASSERT_EQ(r.kind, RxKind::udp);
    EXPECT_EQ(r.udp.dst_port, kUdpPortDiscard);
    ASSERT_EQ(r.udp.data_len, payload.size());
    EXPECT_EQ(memcmp(r.udp.data, payload.data(), payload.size()), 0);

    // A zero-length datagram pads to the Ethernet minimum.
    EXPECT_EQ(build_udp_frame(buf, sizeof buf, ep, 1, 9, nullptr, 0), kEthMinFrameLen);
}

TEST(GuestNetUdp, HostileDatagramsAreRejected) {
    Bytes f = hex(kUdpToEcho);
    uint8_t* u = f.data() + 34;
    UdpDatagram d;
    for (size_t n = 0; n < 8; ++n) EXPECT_EQ(parse_udp(kIpA, kIpB, u, n, &d), UdpError::too_short);
    EXPECT_EQ(parse_udp(kIpA, kIpB, u, 12, &d), UdpError::bad_length);  // length 13 > 12 present
    Bytes g = f;
    g[34 + 5] = 7;  // length 7 < 8
    EXPECT_EQ(parse_udp(kIpA, kIpB, g.data() + 34, 13, &d), UdpError::bad_length);
    EXPECT_EQ(parse_udp(kIpA, Ipv4Addr::from(10, 0, 0, 3), u, 13, &d), UdpError::bad_checksum);  // pseudo-header
    g = f;
    g[34 + 8] ^= 1;  // payload changed
    EXPECT_EQ(parse_udp(kIpA, kIpB, g.data() + 34, 13, &d), UdpError::bad_checksum);
    g[34 + 6] = g[34 + 7] = 0;  // no checksum: accepted as is (RFC 768)
    ASSERT_EQ(parse_udp(kIpA, kIpB, g.data() + 34, 13, &d), UdpError::ok);
    EXPECT_FALSE(d.had_checksum);
    // A shorter UDP length than the IP payload: the rest is ignored.
    g = f;
    Bytes udp4 = hex("9c 40 00 07 00 0a 00 00 68 65");
    ASSERT_EQ(parse_udp(kIpA, kIpB, udp4.data(), udp4.size(), &d), UdpError::ok);
    EXPECT_EQ(d.data_len, 2u);
}

// ---- the stack on hostile frames ----

TEST(GuestNetStack, ClassifiesShortForeignAndOddFrames) {
    FakeNic nic;
    Stack st(kMacB, kIpB, &FakeNic::send, &nic);
    Bytes f = hex(kIcmpRequest);
    for (size_t len = 0; len < kEthHeaderLen; ++len)
        EXPECT_EQ(st.handle(f.data(), len, 0).kind, RxKind::malformed) << len;
    // Every truncation of a valid request is either malformed or (never) answered.
    for (size_t len = kEthHeaderLen; len < f.size(); ++len) {
        RxInfo r = st.handle(f.data(), len, 0);
        EXPECT_EQ(r.kind, RxKind::malformed) << len;
        EXPECT_FALSE(r.answered);
    }
    EXPECT_TRUE(nic.sent.empty());

    Bytes other_mac = f;
    other_mac[5] = 0x03;
    EXPECT_EQ(st.handle(other_mac.data(), other_mac.size(), 0).kind, RxKind::not_for_us);
    Bytes bad_sum = hex(kUdpToEcho);
    bad_sum[33] = 3;  // 10.0.0.3 without fixing the checksum: malformed before any address check
    EXPECT_EQ(st.handle(bad_sum.data(), bad_sum.size(), 0).kind, RxKind::malformed);
    uint8_t other_ip[kEthMaxFrameLen];
    Ipv4Endpoints ep{kMacA, kMacB, kIpA, Ipv4Addr::from(10, 0, 0, 3), 1};
    size_t n = build_udp_frame(other_ip, sizeof other_ip, ep, 1, 7, nullptr, 0);
    EXPECT_EQ(st.handle(other_ip, n, 0).kind, RxKind::not_for_us);
    Bytes ipv6 = f;
    ipv6[12] = 0x86;
    ipv6[13] = 0xdd;
    EXPECT_EQ(st.handle(ipv6.data(), ipv6.size(), 0).kind, RxKind::other);
    EXPECT_TRUE(nic.sent.empty());
    EXPECT_EQ(st.counters().rx_other, 1u);
    EXPECT_EQ(st.counters().rx_not_for_us, 2u);
}

TEST(GuestNetStack, RandomMutationsNeverCrashOrAnswerGarbage) {
    // Deterministic xorshift mutations of the valid frames, at every length:
    // ASan/UBSan watch the parsers; every answer must itself parse cleanly.
    const Bytes seeds[] = {hex(kIcmpRequest), hex(kUdpToEcho), hex(kArpRequest)};
    XorShift next{0x9E3779B97F4A7C15ull};
    FakeNic nic;
    Stack st(kMacB, kIpB, &FakeNic::send, &nic);
    st.set_udp_echo(true);
    FakeNic sink;
    Stack peer(kMacA, kIpA, &FakeNic::send, &sink);
    size_t answers = 0;
    for (int iter = 0; iter < 20000; ++iter) {
        Bytes f = seeds[next() % 3];
        int flips = 1 + static_cast<int>(next() % 4);
        for (int k = 0; k < flips; ++k) f[next() % f.size()] = static_cast<uint8_t>(next());
        size_t len = next() % (f.size() + 1);
        // Exactly `len` bytes in their own heap block, so ASan sees any overread.
        Bytes exact(f.begin(), f.begin() + static_cast<long>(len));
        nic.sent.clear();
        st.handle(exact.data(), exact.size(), 0);
        for (const Bytes& out : nic.sent) {
            ++answers;
            ASSERT_GE(out.size(), kEthMinFrameLen);
            ASSERT_LE(out.size(), kEthMaxFrameLen);
            RxKind k = peer.handle(out.data(), out.size(), 0).kind;
            EXPECT_TRUE(k == RxKind::arp_reply || k == RxKind::icmp_echo_reply || k == RxKind::udp ||
                        k == RxKind::not_for_us)
                << rx_kind_name(k);
        }
    }
    // Mutations that hit only padding or payload bytes are still answered.
    EXPECT_GT(answers, 100u);
    EXPECT_GT(st.counters().rx_malformed, 1000u);
}

// ---- args ----

TEST(GuestNetArgs, ParsesKeyValueWords) {
    hvg::Args a("ip=10.0.0.2  peer=10.0.0.1\tcount=5 mode=irq peer_mac=02:00:00:00:00:01");
    hvg::net::Ipv4Addr ip{}, peer{};
    EXPECT_TRUE(a.ipv4("ip", true, &ip));
    EXPECT_TRUE(a.ipv4("peer", true, &peer));
    EXPECT_EQ(ip, kIpB);
    EXPECT_EQ(peer, kIpA);
    EXPECT_EQ(a.u64("count", 10, 1, 1000), 5u);
    EXPECT_EQ(a.u64("interval_ms", 10, 0, 1000), 10u);  // absent: default
    MacAddr m{};
    EXPECT_TRUE(a.mac("peer_mac", false, &m));
    EXPECT_EQ(m, kMacA);
    static const char* const kModes[] = {"poll", "irq", nullptr};
    EXPECT_EQ(a.choice("mode", kModes, 0), 1u);
    EXPECT_TRUE(a.is("mode", "irq"));
    EXPECT_FALSE(a.is("mode", "ir"));
    EXPECT_FALSE(a.has("ipx"));
    static const char* const kKnown[] = {"ip", "peer", "count", "mode", "peer_mac", nullptr};
    a.check_known(kKnown);
    EXPECT_TRUE(a.ok());
}

TEST(GuestNetArgs, ReportsTheFirstProblem) {
    struct Case {
        const char* text;
        const char* key;
        const char* what;
    } cases[] = {
        {"count=abc", "count", "bad_value"},
        {"count=0", "count", "out_of_range"},
        {"count=99999999999999999999", "count", "bad_value"},
        {"count=", "count", "bad_value"},
        {"peer=10.0.0.1", "ip", "missing"},
        {"ip=10.0.0.300", "ip", "bad_value"},
        {"ip=10.0.0.1 bogus", "bogus", "not_key_value"},
        {"ip=10.0.0.1 =5", "=5", "not_key_value"},
        {"ip=10.0.0.1 colour=red", "colour", "unknown_key"},
    };
    static const char* const kKnown[] = {"ip", "count", nullptr};
    for (const Case& c : cases) {
        hvg::Args a(c.text);
        hvg::net::Ipv4Addr ip{};
        a.u64("count", 10, 1, 1000);
        a.ipv4("ip", true, &ip);
        a.check_known(kKnown);
        ASSERT_FALSE(a.ok()) << c.text;
        EXPECT_EQ(std::string(a.error_key().p, a.error_key().len), c.key) << c.text;
        EXPECT_STREQ(a.error_what(), c.what) << c.text;
    }
    hvg::Args empty(nullptr);
    EXPECT_EQ(empty.u64("count", 10, 1, 1000), 10u);
    EXPECT_TRUE(empty.ok());
}

TEST(GuestNetArgs, ListsOfVlanInterfacesAndPeers) {
    hvg::Args a("vif=10:10.10.0.1,0:10.30.0.1 peer=10.0.0.1,10.0.0.3@02:00:00:00:00:03 x=1,,2");
    VlanIf ifs[3] = {};
    ASSERT_EQ(a.vlan_ifs("vif", ifs, 3), 2u);
    EXPECT_EQ(ifs[0].vid, 10);
    EXPECT_EQ(ifs[0].ip, Ipv4Addr::from(10, 10, 0, 1));
    EXPECT_EQ(ifs[1].vid, 0);
    EXPECT_EQ(ifs[1].ip, Ipv4Addr::from(10, 30, 0, 1));
    hvg::Args::Peer peers[4] = {};
    ASSERT_EQ(a.peers("peer", true, peers, 4), 2u);
    EXPECT_EQ(peers[0].ip, kIpA);
    EXPECT_FALSE(peers[0].has_mac);
    EXPECT_EQ(peers[1].ip, Ipv4Addr::from(10, 0, 0, 3));
    ASSERT_TRUE(peers[1].has_mac);
    EXPECT_EQ(peers[1].mac, (MacAddr{{0x02, 0, 0, 0, 0, 0x03}}));
    EXPECT_EQ(a.vlan_ifs("absent", ifs, 3), 0u);
    EXPECT_TRUE(a.ok());
    hvg::ArgValue items[4];
    EXPECT_EQ(a.list("x", items, 4), 0u);  // an empty item
    EXPECT_STREQ(a.error_what(), "bad_value");
}

TEST(GuestNetArgs, ListProblemsNameTheKeyAndTheRange) {
    struct Case {
        const char* text;
        const char* what;
    } cases[] = {
        {"vif=10:10.0.0.1,20:10.0.0.2,30:10.0.0.3,40:10.0.0.4", "too_many"},
        {"vif=4095:10.0.0.1", "out_of_range"},
        {"vif=10", "bad_value"},
        {"vif=10:", "bad_value"},
        {"vif=:10.0.0.1", "bad_value"},
        {"vif=-1:10.0.0.1", "bad_value"},
        {"vif=10:10.0.0.1,", "bad_value"},
        {"vif=10;10.0.0.1", "bad_value"},
    };
    for (const Case& c : cases) {
        hvg::Args a(c.text);
        VlanIf ifs[3];
        EXPECT_EQ(a.vlan_ifs("vif", ifs, 3), 0u) << c.text;
        ASSERT_FALSE(a.ok()) << c.text;
        EXPECT_EQ(std::string(a.error_key().p, a.error_key().len), "vif") << c.text;
        EXPECT_STREQ(a.error_what(), c.what) << c.text;
        EXPECT_EQ(a.error_has_range(), std::string(c.what) == "out_of_range") << c.text;
        if (a.error_has_range()) {
            EXPECT_EQ(a.error_min(), 0u);
            EXPECT_EQ(a.error_max(), kVidMax);
        }
    }
    hvg::Args vlan("vlan=4095");
    vlan.u64("vlan", 0, kVidMin, kVidMax);
    ASSERT_TRUE(vlan.error_has_range());
    EXPECT_EQ(vlan.error_min(), 1u);
    EXPECT_EQ(vlan.error_max(), 4094u);

    const char* bad_peers[] = {"peer=10.0.0.1@", "peer=10.0.0.1@02:00:00", "peer=@02:00:00:00:00:01",
                               "peer=10.0.0.1,,"};
    for (const char* t : bad_peers) {
        hvg::Args a(t);
        hvg::Args::Peer p[4];
        EXPECT_EQ(a.peers("peer", true, p, 4), 0u) << t;
        EXPECT_STREQ(a.error_what(), "bad_value") << t;
    }
    hvg::Args none("ip=10.0.0.1");
    hvg::Args::Peer p[4];
    EXPECT_EQ(none.peers("peer", true, p, 4), 0u);
    EXPECT_STREQ(none.error_what(), "missing");
    hvg::Args five("peer=1.0.0.1,1.0.0.2,1.0.0.3,1.0.0.4,1.0.0.5");
    EXPECT_EQ(five.peers("peer", true, p, 4), 0u);
    EXPECT_STREQ(five.error_what(), "too_many");
    // The first problem is kept.
    hvg::Args two("vlan=0 vif=x");
    two.u64("vlan", 0, kVidMin, kVidMax);
    VlanIf ifs[3];
    two.vlan_ifs("vif", ifs, 3);
    EXPECT_EQ(std::string(two.error_key().p, two.error_key().len), "vlan");
    EXPECT_EQ(two.error_min(), 1u);
}

// ---- 802.1Q tags and VLAN interfaces ----

namespace {

// kArpRequest with a C-tag for VID 10 (TPID 81 00, TCI 00 0a) after the source MAC.
const char* kArpRequestVid10 =
    "ff ff ff ff ff ff 00 11 22 33 44 55 81 00 00 0a 08 06 00 01 08 00 06 04 00 01 00 11 22 33 44 55 0a 00 00 01"
    "00 00 00 00 00 00 0a 00 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";

Bytes tagged(const Bytes& f, uint16_t vid) {
    Bytes out(f.size() + kVlanTagLen);
    EXPECT_EQ(add_tag(f.data(), f.size(), vid, out.data(), out.size()), out.size());
    return out;
}

}  // namespace

TEST(GuestNetVlan, TagsAndUntagsAsWrittenIn8021Q) {
    Bytes plain = hex(kArpRequest);
    Bytes vid10 = hex(kArpRequestVid10);
    EXPECT_EQ(tagged(plain, 10), vid10);
    VlanView v;
    ASSERT_TRUE(parse_vlan(vid10.data(), vid10.size(), &v));
    EXPECT_TRUE(v.tagged);
    EXPECT_EQ(v.vid, 10);
    EXPECT_EQ(v.inner_type, 0x0806);
    ASSERT_TRUE(parse_vlan(plain.data(), plain.size(), &v));
    EXPECT_FALSE(v.tagged);
    EXPECT_EQ(v.vid, 0);
    EXPECT_EQ(v.inner_type, 0x0806);
    Bytes back(vid10.size());
    ASSERT_EQ(strip_tag(vid10.data(), vid10.size(), back.data(), back.size()), plain.size());
    back.resize(plain.size());
    EXPECT_EQ(back, plain);
    // PCP and DEI bits are not part of the VID.
    Bytes prio = vid10;
    prio[14] = 0xF0;
    ASSERT_TRUE(parse_vlan(prio.data(), prio.size(), &v));
    EXPECT_EQ(v.vid, 10);

    // In place, in a buffer with room for the tag.
    Bytes buf = plain;
    buf.resize(plain.size() + kVlanTagLen);
    EXPECT_EQ(add_tag(buf.data(), plain.size(), 10, buf.data(), buf.size()), vid10.size());
    EXPECT_EQ(buf, vid10);
    EXPECT_EQ(add_tag(plain.data(), plain.size(), 10, buf.data(), plain.size() + 3), 0u);  // no room
    EXPECT_EQ(add_tag(plain.data(), 13, 10, buf.data(), buf.size()), 0u);                  // no header

    EXPECT_EQ(strip_tag(plain.data(), plain.size(), back.data(), back.size()), 0u);  // nothing to strip
    for (size_t len = 0; len < kEthHeaderLen + kVlanTagLen; ++len) {
        Bytes cut(vid10.begin(), vid10.begin() + static_cast<long>(len));
        EXPECT_FALSE(parse_vlan(cut.data(), cut.size(), &v)) << len;
        EXPECT_EQ(strip_tag(cut.data(), cut.size(), back.data(), back.size()), 0u) << len;
    }
    EXPECT_TRUE(is_tag_ethertype(0x8100));
    EXPECT_TRUE(is_tag_ethertype(0x88A8));
    EXPECT_TRUE(is_tag_ethertype(0x9100));
    EXPECT_FALSE(is_tag_ethertype(0x0800));
}

TEST(GuestNetVlan, InterfaceSetsAreChecked) {
    using E = VlanMux::Error;
    VlanIf ok[] = {{0, kIpA}, {10, kIpB}, {4094, Ipv4Addr::from(10, 0, 0, 3)}};
    EXPECT_EQ(VlanMux::check(ok, 3), E::ok);
    EXPECT_EQ(VlanMux::check(ok, 0), E::too_many);
    VlanIf five[] = {{1, kIpA}, {2, kIpB}, {3, {3}}, {4, {4}}, {5, {5}}};
    EXPECT_EQ(VlanMux::check(five, 5), E::too_many);
    VlanIf bad[] = {{4095, kIpA}};
    EXPECT_EQ(VlanMux::check(bad, 1), E::bad_vid);
    VlanIf dup_vlan[] = {{10, kIpA}, {10, kIpB}};
    EXPECT_EQ(VlanMux::check(dup_vlan, 2), E::duplicate_vlan);
    VlanIf two_untagged[] = {{0, kIpA}, {0, kIpB}};
    EXPECT_EQ(VlanMux::check(two_untagged, 2), E::duplicate_vlan);
    VlanIf dup_ip[] = {{10, kIpA}, {20, kIpA}};
    EXPECT_EQ(VlanMux::check(dup_ip, 2), E::duplicate_ip);
    VlanMux m;
    FakeNic nic;
    EXPECT_FALSE(m.init(kMacB, dup_ip, 2, &FakeNic::send, &nic));
    EXPECT_STREQ(VlanMux::error_name(E::duplicate_ip), "duplicate_ip");
}

TEST(GuestNetVlan, EachVlanReachesOnlyItsInterface) {
    // A trunk host: 10.0.0.2 on VLAN 10 and 10.0.1.2 untagged (the native VLAN).
    const VlanIf ifs[] = {{0, Ipv4Addr::from(10, 0, 1, 2)}, {10, kIpB}};
    FakeNic nic;
    VlanMux m;
    ASSERT_TRUE(m.init(kMacB, ifs, 2, &FakeNic::send, &nic));

    // The ARP request on VLAN 10 is answered on VLAN 10, byte for byte.
    Bytes req10 = hex(kArpRequestVid10);
    VlanMux::Rx r = m.handle(req10.data(), req10.size(), 1);
    EXPECT_EQ(r.iface, 1u);
    EXPECT_EQ(r.info.kind, RxKind::arp_request);
    ASSERT_EQ(nic.sent.size(), 1u);
    EXPECT_EQ(nic.sent[0], tagged(hex(kArpReply), 10));
    MacAddr mac;
    EXPECT_TRUE(m.stack(1).resolve(kIpA, &mac));
    EXPECT_FALSE(m.stack(0).resolve(kIpA, &mac));

    // The same request untagged lands on the native interface, which is not 10.0.0.2.
    Bytes req = hex(kArpRequest);
    r = m.handle(req.data(), req.size(), 2);
    EXPECT_EQ(r.iface, 0u);
    EXPECT_EQ(r.info.kind, RxKind::not_for_us);
    EXPECT_EQ(nic.sent.size(), 1u);

    // A priority tag (VID 0) is untagged traffic (802.1Q §6.9.1).
    r = m.handle(tagged(req, 0).data(), req.size() + kVlanTagLen, 3);
    EXPECT_EQ(r.iface, 0u);
    EXPECT_EQ(r.info.kind, RxKind::not_for_us);

    // VLAN 20, a tag behind the tag (10 then 20), an S-tag: dropped and counted, never answered.
    Bytes icmp10 = tagged(hex(kIcmpRequest), 10);
    const Bytes dropped[] = {tagged(req, 20), tagged(hex(kArpRequestVid10), 10), tagged(tagged(req, 20), 10),
                             [&] {
                                 Bytes s = tagged(req, 10);
                                 s[12] = 0x88;
                                 s[13] = 0xA8;
                                 return tagged(s, 0);
                             }(),
                             [&] {
                                 Bytes s = tagged(req, 10);
                                 s[12] = 0x88;
                                 s[13] = 0xA8;
                                 return s;
                             }()};
    for (const Bytes& f : dropped) {
        r = m.handle(f.data(), f.size(), 4);
        EXPECT_EQ(r.iface, VlanMux::kNone);
        EXPECT_EQ(r.info.kind, RxKind::other_vlan);
    }
    EXPECT_EQ(m.counters().rx_vlan_dropped, std::size(dropped));
    EXPECT_EQ(nic.sent.size(), 1u);

    // An ICMP echo on VLAN 10 is answered on VLAN 10.
    r = m.handle(icmp10.data(), icmp10.size(), 5);
    EXPECT_EQ(r.info.kind, RxKind::icmp_echo_request);
    ASSERT_EQ(nic.sent.size(), 2u);
    EXPECT_EQ(nic.sent[1], tagged(hex(kIcmpReply), 10));
    EXPECT_EQ(m.stack(1).counters().icmp_answered, 1u);
    EXPECT_EQ(m.stack(0).counters().icmp_answered, 0u);

    // Short frames and a cut-off tag are malformed.
    for (size_t len = 0; len < kEthHeaderLen + kVlanTagLen; ++len) {
        r = m.handle(icmp10.data(), len, 6);
        EXPECT_EQ(r.info.kind, RxKind::malformed) << len;
    }
    EXPECT_EQ(nic.sent.size(), 2u);
}

TEST(GuestNetVlan, OnlyTaggedInterfaceDropsUntaggedFrames) {
    const VlanIf ifs[] = {{10, kIpB}};
    FakeNic nic;
    VlanMux m;
    ASSERT_TRUE(m.init(kMacB, ifs, 1, &FakeNic::send, &nic));
    Bytes req = hex(kArpRequest);
    EXPECT_EQ(m.handle(req.data(), req.size(), 1).info.kind, RxKind::other_vlan);
    EXPECT_EQ(m.counters().rx_vlan_dropped, 1u);
    EXPECT_TRUE(nic.sent.empty());
    // What the interface sends carries its tag.
    ASSERT_TRUE(m.stack(0).send_arp_request(kIpA));
    ASSERT_EQ(nic.sent.size(), 1u);
    VlanView v;
    ASSERT_TRUE(parse_vlan(nic.sent[0].data(), nic.sent[0].size(), &v));
    EXPECT_TRUE(v.tagged);
    EXPECT_EQ(v.vid, 10);
    EXPECT_EQ(nic.sent[0].size(), kEthMinFrameLen + kVlanTagLen);
    // A full-size frame still fits with its tag.
    static uint8_t data[kEthMtu - 28];
    ASSERT_TRUE(m.stack(0).send_icmp_echo(kMacA, kIpA, 1, 1, data, sizeof data));
    EXPECT_EQ(nic.sent[1].size(), kEthMaxTaggedFrameLen);
    EXPECT_EQ(m.counters().tx_too_long, 0u);
    // A tagged frame longer than 1518 bytes is malformed; 1518 is taken.
    Bytes huge = nic.sent[1];
    EXPECT_EQ(m.handle(huge.data(), huge.size(), 2).iface, 0u);
    huge.push_back(0);
    EXPECT_EQ(m.handle(huge.data(), huge.size(), 2).info.kind, RxKind::malformed);
    EXPECT_EQ(m.counters().rx_malformed, 1u);
}

TEST(GuestNetVlan, RoutesByTheSlash24AndTagsPrebuiltFrames) {
    const VlanIf ifs[] = {
        {0, Ipv4Addr::from(10, 30, 0, 1)}, {10, Ipv4Addr::from(10, 10, 0, 1)}, {20, Ipv4Addr::from(10, 20, 0, 1)}};
    FakeNic nic;
    VlanMux m;
    ASSERT_TRUE(m.init(kMacA, ifs, 3, &FakeNic::send, &nic));
    EXPECT_EQ(m.route(Ipv4Addr::from(10, 20, 0, 77)), 2u);
    EXPECT_EQ(m.route(Ipv4Addr::from(10, 10, 0, 2)), 1u);
    EXPECT_EQ(m.route(Ipv4Addr::from(10, 30, 0, 2)), 0u);
    EXPECT_EQ(m.route(Ipv4Addr::from(192, 168, 0, 1)), 0u);  // no /24 matches: the first interface

    Bytes f = hex(kUdpToEcho);
    Bytes buf = f;
    buf.resize(f.size() + kVlanTagLen);
    EXPECT_EQ(m.encap(0, buf.data(), buf.size(), f.size()), f.size());
    EXPECT_EQ(m.encap(2, buf.data(), buf.size(), f.size()), f.size() + kVlanTagLen);
    EXPECT_EQ(buf, tagged(f, 20));
    EXPECT_EQ(m.encap(2, buf.data(), f.size() + 2, f.size()), 0u);
}

TEST(GuestNetVlan, RandomTaggedFramesNeverCrashOrLeakAcrossVlans) {
    // Deterministic xorshift mutations of tagged frames: ASan/UBSan watch the
    // parsers; every answer carries the tag of the interface that made it.
    const Bytes seeds[] = {tagged(hex(kIcmpRequest), 10), tagged(hex(kArpRequest), 10), hex(kIcmpRequest),
                           tagged(hex(kUdpToEcho), 20)};
    XorShift next{0x2545F4914F6CDD1Dull};
    const VlanIf ifs[] = {{10, kIpB}, {0, Ipv4Addr::from(10, 0, 1, 2)}};
    FakeNic nic;
    VlanMux m;
    ASSERT_TRUE(m.init(kMacB, ifs, 2, &FakeNic::send, &nic));
    m.stack(0).set_udp_echo(true);
    size_t answers = 0;
    for (int iter = 0; iter < 20000; ++iter) {
        Bytes f = seeds[next() % std::size(seeds)];
        int flips = 1 + static_cast<int>(next() % 3);
        for (int k = 0; k < flips; ++k) f[next() % 20] = static_cast<uint8_t>(next());  // the headers and tag
        size_t len = next() % (f.size() + 1);
        Bytes exact(f.begin(), f.begin() + static_cast<long>(len));
        nic.sent.clear();
        VlanMux::Rx r = m.handle(exact.data(), exact.size(), 0);
        for (const Bytes& out : nic.sent) {
            ++answers;
            VlanView v;
            ASSERT_TRUE(parse_vlan(out.data(), out.size(), &v));
            ASSERT_NE(r.iface, VlanMux::kNone);
            EXPECT_EQ(v.vid, m.vid(r.iface));
            EXPECT_EQ(v.tagged, m.vid(r.iface) != 0);
            // The request came in on that interface's VLAN (VID 0 = untagged).
            VlanView in;
            ASSERT_TRUE(parse_vlan(exact.data(), exact.size(), &in));
            EXPECT_EQ(in.vid, m.vid(r.iface));
        }
    }
    EXPECT_GT(answers, 100u);
    EXPECT_GT(m.counters().rx_vlan_dropped, 1000u);
}
