// The MAC table: learning, moves, static entries, ageing (lazy and swept),
// full buckets, flushing, introspection, and lookups racing with writers.
#include "kernel/net/fdb.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <thread>
#include <vector>

using hv::net::Fdb;
using hv::net::FdbEntry;
using hv::net::kNoPort;
using hv::net::LearnResult;
using hv::net::MacAddr;
using hv::net::SourceState;

namespace {

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint64_t kMacA = 0x0000'5600'0002ull;  // 02:00:00:56:00:00 in load_mac48 order
constexpr uint64_t kMacB = 0x0000'5600'0102ull;

std::unique_ptr<Fdb> make_fdb() {
    return std::make_unique<Fdb>();
}

}  // namespace

TEST(Fdb, LearnsAndLooksUpPerVlan) {
    auto f = make_fdb();
    EXPECT_EQ(f->lookup(1, kMacA, 0), kNoPort);
    EXPECT_EQ(f->learn(1, kMacA, 3, 0), LearnResult::learned);
    EXPECT_EQ(f->lookup(1, kMacA, 0), 3);
    EXPECT_EQ(f->lookup(2, kMacA, 0), kNoPort);  // keyed by (VLAN, MAC)
    EXPECT_EQ(f->lookup(1, kMacB, 0), kNoPort);
    EXPECT_EQ(f->learn(1, kMacA, 3, 1), LearnResult::refreshed);
    EXPECT_EQ(f->learned_total(), 1u);
    EXPECT_EQ(f->count(1), 1u);
}

TEST(Fdb, MoveUpdatesPortAndCounts) {
    auto f = make_fdb();
    ASSERT_EQ(f->learn(7, kMacA, 1, 0), LearnResult::learned);
    EXPECT_EQ(f->learn(7, kMacA, 2, kSec), LearnResult::moved);
    EXPECT_EQ(f->lookup(7, kMacA, kSec), 2);
    EXPECT_EQ(f->moved_total(), 1u);
}

TEST(Fdb, StaticEntryNeverMovesNorAges) {
    auto f = make_fdb();
    ASSERT_EQ(f->learn(1, kMacA, 4, 0, true), LearnResult::learned);
    EXPECT_EQ(f->learn(1, kMacA, 5, kSec), LearnResult::static_conflict);
    EXPECT_EQ(f->lookup(1, kMacA, kSec), 4);
    // Ten ageing periods later it is still there.
    EXPECT_EQ(f->lookup(1, kMacA, 10 * Fdb::kDefaultAgeingNs), 4);
    EXPECT_EQ(f->age(10 * Fdb::kDefaultAgeingNs), 0u);
    EXPECT_EQ(f->flush_port(4), 0u);
    EXPECT_EQ(f->lookup(1, kMacA, 0), 4);
    // Re-learning from its own port keeps it static.
    EXPECT_EQ(f->learn(1, kMacA, 4, kSec), LearnResult::refreshed);
    EXPECT_EQ(f->learn(1, kMacA, 5, 2 * kSec), LearnResult::static_conflict);
}

TEST(Fdb, EntriesExpireAfterAgeingTime) {
    auto f = make_fdb();
    f->set_ageing_ns(10 * kSec);
    EXPECT_EQ(f->ageing_ns(), 10 * kSec);
    ASSERT_EQ(f->learn(1, kMacA, 1, 100 * kSec), LearnResult::learned);
    EXPECT_EQ(f->lookup(1, kMacA, 109 * kSec), 1);
    EXPECT_EQ(f->lookup(1, kMacA, 111 * kSec), kNoPort);  // lazily absent
    EXPECT_EQ(f->count(111 * kSec), 0u);
    // Re-learning an aged-out entry is a fresh learn, not a move.
    EXPECT_EQ(f->learn(1, kMacA, 2, 111 * kSec), LearnResult::learned);
    EXPECT_EQ(f->lookup(1, kMacA, 111 * kSec), 2);
    EXPECT_EQ(f->moved_total(), 0u);
}

TEST(Fdb, ForwardLookupRefreshesKnownSource) {
    auto f = make_fdb();
    f->set_ageing_ns(64 * kSec);  // refresh granularity: 1 s
    ASSERT_EQ(f->learn(1, kMacA, 1, 0), LearnResult::learned);
    SourceState s;
    // 40 s later the source sends again: refreshed, so it lives until 40 + 64 s.
    EXPECT_EQ(f->forward_lookup(1, kMacA, kMacB, true, 1, 40 * kSec, &s), kNoPort);
    EXPECT_EQ(s, SourceState::known);
    EXPECT_EQ(f->lookup(1, kMacA, 100 * kSec), 1);
    EXPECT_EQ(f->lookup(1, kMacA, 105 * kSec), kNoPort);
}

TEST(Fdb, ForwardLookupReportsSourceState) {
    auto f = make_fdb();
    SourceState s;
    EXPECT_EQ(f->forward_lookup(1, kMacA, kMacB, true, 1, 0, &s), kNoPort);
    EXPECT_EQ(s, SourceState::unknown);
    ASSERT_EQ(f->learn(1, kMacA, 1, 0), LearnResult::learned);
    ASSERT_EQ(f->learn(1, kMacB, 2, 0, true), LearnResult::learned);
    EXPECT_EQ(f->forward_lookup(1, kMacA, kMacB, true, 1, 0, &s), 2);
    EXPECT_EQ(s, SourceState::known);
    EXPECT_EQ(f->forward_lookup(1, kMacA, kMacB, false, 3, 0, &s), kNoPort);  // want_dst false
    EXPECT_EQ(s, SourceState::other_port);
    EXPECT_EQ(f->forward_lookup(1, kMacB, kMacA, true, 3, 0, &s), 1);
    EXPECT_EQ(s, SourceState::other_static);
}

// How long a forward_lookup answer may be reused, and the generation that
// must stay unchanged meanwhile.
TEST(Fdb, ForwardLookupSaysHowLongItsAnswerHolds) {
    auto f = make_fdb();
    f->set_ageing_ns(64 * kSec);  // refresh every 1 s of age
    constexpr uint64_t kUnit = 1ull << Fdb::kTimeShift;
    SourceState s;
    uint64_t until = 123;
    f->forward_lookup(1, kMacA, kMacB, true, 1, 0, &s, &until);
    EXPECT_EQ(until, 0u);  // unknown source: it is learned, nothing to reuse
    uint32_t g = f->generation();
    EXPECT_EQ(g % 2, 0u);
    ASSERT_EQ(f->learn(1, kMacA, 1, 0), LearnResult::learned);
    EXPECT_NE(f->generation(), g);
    ASSERT_EQ(f->learn(1, kMacB, 2, 0), LearnResult::learned);
    // Known source seen at 0: reusable until its refresh is due (1 s of age).
    EXPECT_EQ(f->forward_lookup(1, kMacA, kMacB, true, 1, kSec / 2, &s, &until), 2);
    const uint64_t refresh_u = (64 * kSec >> Fdb::kTimeShift) / 64;
    EXPECT_EQ(until, (refresh_u + 1) * kUnit);
    // B is static and A too: nothing ages, the answer holds for good.
    auto g2 = make_fdb();
    ASSERT_EQ(g2->learn(1, kMacA, 1, 0, true), LearnResult::learned);
    ASSERT_EQ(g2->learn(1, kMacB, 2, 0, true), LearnResult::learned);
    EXPECT_EQ(g2->forward_lookup(1, kMacA, kMacB, true, 1, 5 * kSec, &s, &until), 2);
    EXPECT_EQ(until, (~0ull >> Fdb::kTimeShift) << Fdb::kTimeShift);
    // A static source and a dynamic destination: until the destination expires.
    ASSERT_EQ(g2->learn(1, kMacB + 0x10000, 3, 10 * kSec), LearnResult::learned);
    EXPECT_EQ(g2->forward_lookup(1, kMacA, kMacB + 0x10000, true, 1, 11 * kSec, &s, &until), 3);
    EXPECT_EQ(until, ((10 * kSec >> Fdb::kTimeShift) + (Fdb::kDefaultAgeingNs >> Fdb::kTimeShift) + 1) * kUnit);
    // Every write changes the generation, including a new ageing time.
    g = g2->generation();
    g2->set_ageing_ns(32 * kSec);
    EXPECT_NE(g2->generation(), g);
    g = g2->generation();
    EXPECT_EQ(g2->flush_port(3), 1u);
    EXPECT_NE(g2->generation(), g);
}

TEST(Fdb, FullBucketRefusesAndCountsThenReusesExpiredWays) {
    auto f = make_fdb();
    f->set_ageing_ns(10 * kSec);
    std::vector<uint64_t> refused;
    size_t learned = 0;
    // Four times the capacity: buckets overflow long before the table is "full".
    for (uint64_t i = 0; i < 4 * Fdb::kDefaultCapacity; ++i) {
        uint64_t mac = 0x0200'0000'0000ull | (i * 0x10001ull);
        LearnResult r = f->learn(1, mac, static_cast<uint16_t>(i % 8), 0);
        if (r == LearnResult::full)
            refused.push_back(mac);
        else if (r == LearnResult::learned)
            ++learned;
    }
    EXPECT_EQ(learned, Fdb::kDefaultCapacity);  // every way of every bucket got used
    EXPECT_EQ(refused.size(), 3 * Fdb::kDefaultCapacity);
    EXPECT_EQ(f->full_total(), refused.size());
    EXPECT_EQ(f->count(0), Fdb::kDefaultCapacity);
    EXPECT_EQ(f->lookup(1, refused[0], 0), kNoPort);
    // Once the old entries aged out, their ways are reused.
    EXPECT_EQ(f->learn(1, refused[0], 1, 11 * kSec), LearnResult::learned);
    EXPECT_EQ(f->lookup(1, refused[0], 11 * kSec), 1);
    EXPECT_EQ(f->age(11 * kSec), Fdb::kDefaultCapacity - 1);
    EXPECT_EQ(f->count(11 * kSec), 1u);
}

TEST(Fdb, FlushPortRemovesOnlyItsDynamicEntries) {
    auto f = make_fdb();
    ASSERT_EQ(f->learn(1, kMacA, 1, 0), LearnResult::learned);
    ASSERT_EQ(f->learn(2, kMacA, 1, 0), LearnResult::learned);
    ASSERT_EQ(f->learn(1, kMacB, 2, 0), LearnResult::learned);
    ASSERT_EQ(f->learn(3, kMacB, 1, 0, true), LearnResult::learned);
    EXPECT_EQ(f->flush_port(1), 2u);
    EXPECT_EQ(f->lookup(1, kMacA, 0), kNoPort);
    EXPECT_EQ(f->lookup(2, kMacA, 0), kNoPort);
    EXPECT_EQ(f->lookup(1, kMacB, 0), 2);
    EXPECT_EQ(f->lookup(3, kMacB, 0), 1);
}

TEST(Fdb, ForEachReportsEveryLiveEntry) {
    auto f = make_fdb();
    ASSERT_EQ(f->learn(10, kMacA, 1, 2 * kSec), LearnResult::learned);
    ASSERT_EQ(f->learn(20, kMacB, 2, 0, true), LearnResult::learned);
    std::vector<FdbEntry> seen;
    f->for_each(5 * kSec, [&](const FdbEntry& e) { seen.push_back(e); });
    ASSERT_EQ(seen.size(), 2u);
    if (seen[0].vlan != 10) std::swap(seen[0], seen[1]);
    EXPECT_EQ(seen[0].vlan, 10);
    EXPECT_EQ(seen[0].mac, MacAddr::from_u64(kMacA));
    EXPECT_EQ(seen[0].port, 1);
    EXPECT_FALSE(seen[0].is_static);
    // Age with the table's 65.5 us granularity.
    EXPECT_NEAR(static_cast<double>(seen[0].age_ns), 3.0 * kSec, 2 << Fdb::kTimeShift);
    EXPECT_EQ(seen[1].vlan, 20);
    EXPECT_EQ(seen[1].mac, MacAddr::from_u64(kMacB));
    EXPECT_EQ(seen[1].port, 2);
    EXPECT_TRUE(seen[1].is_static);
    EXPECT_EQ(seen[1].age_ns, 0u);
}

TEST(Fdb, HashSeedSpreadsKeysDifferently) {
    // Same keys, different seeds: the set of refused keys differs, so a guest
    // cannot precompute colliding MACs without the seed.
    auto refused_with = [](uint64_t seed) {
        auto f = make_fdb();
        f->set_hash_seed(seed);
        std::set<uint64_t> refused;
        for (uint64_t i = 0; i < 2 * Fdb::kDefaultCapacity; ++i)
            if (f->learn(1, 0x0200'0000'0000ull + i, 1, 0) == LearnResult::full) refused.insert(i);
        return refused;
    };
    EXPECT_NE(refused_with(0), refused_with(0x1234'5678'9abc'def1ull));
}

TEST(Fdb, LookupsRacingWithWritersSeeOnlyRealPorts) {
    auto f = make_fdb();
    // A static entry that must always be found, and a dynamic one that moves
    // between ports 1 and 2 and is flushed, while other keys churn its bucket.
    ASSERT_EQ(f->learn(1, kMacA, 9, 0, true), LearnResult::learned);
    std::atomic<bool> stop{false}, started{false};
    std::thread writer([&] {
        for (uint64_t i = 0; !stop.load(); ++i) {
            (void)f->learn(1, kMacB, static_cast<uint16_t>(1 + (i & 1)), i);
            (void)f->learn(1, 0x0600'0000'0000ull + (i % 20000), 3, i);
            if (i % 64 == 0) f->flush_port(3);
            started.store(true);
        }
    });
    // On a loaded machine the writer may start late: race with it, not before it.
    while (!started.load()) std::this_thread::yield();
    size_t bad = 0, found_b = 0;
    for (int i = 0; i < 200000; ++i) {
        if (f->lookup(1, kMacA, 0) != 9) ++bad;
        uint16_t p = f->lookup(1, kMacB, 0);
        if (p != kNoPort && p != 1 && p != 2) ++bad;
        if (p != kNoPort) ++found_b;
    }
    stop = true;
    writer.join();
    EXPECT_EQ(bad, 0u);
    EXPECT_GT(found_b, 0u);
}

TEST(Fdb, ForgetMacRemovesItsDynamicEntriesOnEveryVlan) {
    auto f = make_fdb();
    ASSERT_EQ(f->learn(1, kMacA, 1, 0), LearnResult::learned);
    ASSERT_EQ(f->learn(2, kMacA, 2, 0), LearnResult::learned);
    ASSERT_EQ(f->learn(3, kMacA, 3, 0, true), LearnResult::learned);
    ASSERT_EQ(f->learn(1, kMacB, 1, 0), LearnResult::learned);
    EXPECT_EQ(f->forget_mac(kMacA), 2u);
    EXPECT_EQ(f->lookup(1, kMacA, 0), kNoPort);
    EXPECT_EQ(f->lookup(2, kMacA, 0), kNoPort);
    EXPECT_EQ(f->lookup(3, kMacA, 0), 3);
    EXPECT_EQ(f->lookup(1, kMacB, 0), 1);
}

namespace {

// A table of `entries` in storage from the test's heap, as the hypervisor
// gives it frames at boot.
struct SizedFdb {
    explicit SizedFdb(size_t entries) : storage(Fdb::storage_bytes(entries) / 64 + 1) {
        auto r = f->set_storage(storage.data(), Fdb::storage_bytes(entries), entries);
        EXPECT_TRUE(r.ok()) << r.error().detail;
    }
    struct alignas(64) Line {
        uint8_t b[64];
    };
    std::unique_ptr<Fdb> f = make_fdb();
    std::vector<Line> storage;
};

// Learns `count` distinct MACs (from `first`) on port at now; returns how many were learned.
size_t learn_many(Fdb& f, uint16_t port, uint64_t first, size_t count, uint64_t now, uint16_t vlan = 1) {
    size_t learned = 0;
    for (uint64_t i = 0; i < count; ++i)
        learned += f.learn(vlan, 0x0200'0000'0000ull + ((first + i) << 8), port, now) == LearnResult::learned;
    return learned;
}

}  // namespace

TEST(FdbCapacity, StorageOfEveryAllowedSizeFillsExactly) {
    for (size_t entries : {size_t{256}, size_t{1024}, size_t{8192}, size_t{65536}}) {
        SizedFdb s(entries);
        EXPECT_EQ(s.f->capacity(), entries);
        // Four times the capacity: every way of every bucket gets used, no more.
        size_t learned = 0, full = 0;
        for (uint64_t i = 0; i < 4 * entries; ++i) {
            LearnResult r = s.f->learn(1, 0x0200'0000'0000ull | (i * 0x10001ull), 1, 0);
            learned += r == LearnResult::learned;
            full += r == LearnResult::full;
        }
        EXPECT_EQ(learned, entries);
        EXPECT_EQ(full, 3 * entries);
        EXPECT_EQ(s.f->count(0), entries);
        EXPECT_EQ(s.f->age(Fdb::kDefaultAgeingNs * 2), entries);
        EXPECT_EQ(s.f->count(Fdb::kDefaultAgeingNs * 2), 0u);
    }
}

TEST(FdbCapacity, DefaultTableIsTheBuiltInOne) {
    auto f = make_fdb();
    EXPECT_EQ(f->capacity(), Fdb::kDefaultCapacity);
    EXPECT_EQ(f->capacity(), 4096u);
}

TEST(FdbCapacity, BadStorageIsRefusedAndTheTableStaysUsable) {
    auto f = make_fdb();
    alignas(64) static uint8_t mem[Fdb::storage_bytes(512) + 64];
    for (size_t bad : {size_t{0}, size_t{128}, size_t{300}, size_t{1000}, size_t{131072}})
        EXPECT_FALSE(f->set_storage(mem, sizeof mem, bad).ok()) << bad;
    EXPECT_FALSE(f->set_storage(mem + 8, sizeof mem - 8, 512).ok());           // misaligned
    EXPECT_FALSE(f->set_storage(mem, Fdb::storage_bytes(512) - 1, 512).ok());  // too small
    EXPECT_FALSE(f->set_storage(nullptr, sizeof mem, 512).ok());
    EXPECT_EQ(f->capacity(), Fdb::kDefaultCapacity);
    ASSERT_EQ(f->learn(1, kMacA, 1, 0), LearnResult::learned);
    // Once something was learned the table may not move (its entries would be lost).
    EXPECT_FALSE(f->set_storage(mem, sizeof mem, 512).ok());
    EXPECT_EQ(f->lookup(1, kMacA, 0), 1);
}

TEST(FdbLimit, PortLearnsUpToItsLimitThenIsRefusedOthersAreNot) {
    auto f = make_fdb();
    f->set_port_limit(1, 5);
    EXPECT_EQ(f->port_limit(1), 5u);
    EXPECT_EQ(f->port_limit(2), 0u);
    EXPECT_EQ(learn_many(*f, 1, 0, 5, 0), 5u);
    EXPECT_EQ(f->learn(1, 0x0200'0000'ff00ull, 1, 0), LearnResult::limit);
    EXPECT_EQ(f->learn(1, 0x0200'0000'fe00ull, 1, 0), LearnResult::limit);
    EXPECT_EQ(f->limited_total(), 2u);
    EXPECT_EQ(f->port_count(1, 0), 5u);
    EXPECT_EQ(f->lookup(1, 0x0200'0000'ff00ull, 0), kNoPort);
    // Known MACs refresh; another VLAN is another entry, so it is refused too.
    EXPECT_EQ(f->learn(1, 0x0200'0000'0000ull, 1, kSec), LearnResult::refreshed);
    EXPECT_EQ(f->learn(2, 0x0200'0000'0000ull, 1, kSec), LearnResult::limit);
    // Port 2, unlimited, still learns as many as it likes; port 3 its own 5.
    EXPECT_EQ(learn_many(*f, 2, 100, 200, 0), 200u);
    f->set_port_limit(3, 5);
    EXPECT_EQ(learn_many(*f, 3, 400, 7, 0), 5u);
    EXPECT_EQ(f->port_count(1, 0), 5u);
    EXPECT_EQ(f->port_count(2, 0), 200u);
    EXPECT_EQ(f->port_count(3, 0), 5u);
}

TEST(FdbLimit, StaticEntriesDoNotCount) {
    auto f = make_fdb();
    f->set_port_limit(1, 2);
    for (uint16_t vlan = 1; vlan <= 10; ++vlan) ASSERT_EQ(f->learn(vlan, kMacA, 1, 0, true), LearnResult::learned);
    EXPECT_EQ(learn_many(*f, 1, 0, 3, 0), 2u);
    // A learned entry that becomes static gives its place back.
    ASSERT_EQ(f->learn(1, 0x0200'0000'0000ull, 1, 0, true), LearnResult::refreshed);
    EXPECT_EQ(f->port_count(1, 0), 1u);
    EXPECT_EQ(learn_many(*f, 1, 50, 2, 0), 1u);
}

TEST(FdbLimit, AgeingGivesThePlaceBackEvenWithoutASweep) {
    auto f = make_fdb();
    f->set_ageing_ns(10 * kSec);
    f->set_port_limit(1, 4);
    EXPECT_EQ(learn_many(*f, 1, 0, 2, 0), 2u);
    EXPECT_EQ(learn_many(*f, 1, 10, 2, 5 * kSec), 2u);
    EXPECT_EQ(learn_many(*f, 1, 20, 1, 6 * kSec), 0u);  // refused: 4 live
    // At 10 s + one unit, the first two are expired (lazily: nobody swept).
    uint64_t t = 10 * kSec + (2ull << Fdb::kTimeShift);
    EXPECT_EQ(f->port_count(1, t), 2u);
    EXPECT_EQ(learn_many(*f, 1, 20, 3, t), 2u);
    EXPECT_EQ(f->port_count(1, t), 4u);
    // The refusals from here on need no sweep until the next expiry at 15 s...
    EXPECT_EQ(learn_many(*f, 1, 30, 5, 14 * kSec), 0u);
    // ...and then the two learned at 5 s make room.
    EXPECT_EQ(learn_many(*f, 1, 30, 5, 15 * kSec + (2ull << Fdb::kTimeShift)), 2u);
}

TEST(FdbLimit, ExpiredWayReusedByAnotherPortGivesItsPortThePlaceBack) {
    SizedFdb s(256);  // 32 buckets: port 2 reuses port 1's expired ways
    Fdb& f = *s.f;
    f.set_ageing_ns(10 * kSec);
    f.set_port_limit(1, 40);
    EXPECT_EQ(learn_many(f, 1, 0, 40, 0), 40u);
    EXPECT_EQ(learn_many(f, 1, 100, 1, kSec), 0u);
    // Port 2 fills the table after port 1's entries expired, reusing their ways.
    EXPECT_EQ(learn_many(f, 2, 1000, 4 * 256, 20 * kSec), 256u);
    EXPECT_EQ(f.port_count(1, 20 * kSec), 0u);
    // Port 1 has its whole budget again: its bucket is full of port 2's live
    // entries (full), never refused for its limit.
    EXPECT_EQ(f.learn(1, 0x0200'0000'aa00ull, 1, 20 * kSec), LearnResult::full);
    EXPECT_EQ(f.limited_total(), 1u);
    EXPECT_EQ(f.age(40 * kSec), 256u);
    EXPECT_EQ(learn_many(f, 1, 2000, 50, 40 * kSec), 40u);
}

TEST(FdbLimit, FlushAndForgetGiveThePlacesBack) {
    auto f = make_fdb();
    f->set_port_limit(1, 3);
    EXPECT_EQ(learn_many(*f, 1, 0, 3, 0), 3u);
    EXPECT_EQ(f->flush_port(1), 3u);
    EXPECT_EQ(learn_many(*f, 1, 10, 5, 0), 3u);
    EXPECT_EQ(f->forget_mac(0x0200'0000'0000ull + (10 << 8)), 1u);
    EXPECT_EQ(learn_many(*f, 1, 20, 5, 0), 1u);
    EXPECT_EQ(f->port_count(1, 0), 3u);
}

TEST(FdbLimit, AMoveTakesThePlaceFromTheOldPortAndNeedsOneAtTheNew) {
    auto f = make_fdb();
    f->set_port_limit(1, 2);
    f->set_port_limit(2, 2);
    const uint64_t a = 0x0200'0000'0100ull, b = 0x0200'0000'0200ull, c = 0x0200'0000'0300ull;
    ASSERT_EQ(f->learn(1, a, 1, 0), LearnResult::learned);
    ASSERT_EQ(f->learn(1, b, 1, 0), LearnResult::learned);
    ASSERT_EQ(f->learn(1, c, 2, 0), LearnResult::learned);
    // a moves to port 2: port 1 has room again, port 2 is now full.
    EXPECT_EQ(f->learn(1, a, 2, kSec), LearnResult::moved);
    EXPECT_EQ(f->port_count(1, kSec), 1u);
    EXPECT_EQ(f->port_count(2, kSec), 2u);
    // b cannot move to port 2 (at its limit): it stays on port 1.
    EXPECT_EQ(f->learn(1, b, 2, kSec), LearnResult::limit);
    EXPECT_EQ(f->lookup(1, b, kSec), 1);
    EXPECT_EQ(f->learn(1, 0x0200'0000'0400ull, 1, kSec), LearnResult::learned);
    EXPECT_EQ(f->port_count(1, kSec), 2u);
}

TEST(FdbLimit, ZeroMeansNoLimitAndALimitCanBeChanged) {
    SizedFdb s(1024);
    Fdb& f = *s.f;
    f.set_port_limit(1, 0);
    size_t learned = learn_many(f, 1, 0, 600, 0);
    EXPECT_EQ(learned, 600u - f.full_total());
    EXPECT_EQ(f.limited_total(), 0u);
    f.set_port_limit(1, 1000);
    EXPECT_NE(f.learn(1, 0x0300'0000'0000ull, 1, 0), LearnResult::limit);
    f.set_port_limit(1, 10);
    EXPECT_EQ(f.learn(1, 0x0300'0000'0100ull, 1, 0), LearnResult::limit);
}

TEST(FdbLimit, CountsStayExactUnderConcurrentWriters) {
    // Two ports at their limits learn, move each other's stations, flush and
    // age on two threads while a third sweeps. Afterwards each port's count
    // must come back to exactly zero: a lost or doubled update would leave a
    // port with less (or more) room than its limit.
    auto f = make_fdb();
    f->set_ageing_ns(kSec);
    f->set_port_limit(1, 16);
    f->set_port_limit(2, 16);
    std::atomic<bool> stop{false};
    auto writer = [&](uint16_t port) {
        for (uint64_t i = 0; !stop.load(); ++i) {
            uint64_t now = i * (kSec / 50);
            (void)f->learn(1, 0x0200'0000'0000ull + ((i % 64) << 8), port, now);
            if (i % 97 == 0) f->flush_port(port);
        }
    };
    std::thread t1(writer, 1), t2(writer, 2);
    std::thread sweeper([&] {
        for (uint64_t i = 0; !stop.load(); ++i) f->age(i * kSec / 10);
    });
    // (Counting the table meanwhile would prove nothing: a walk is not a
    // snapshot, it may see a station before it moved and its successor.)
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
    t1.join();
    t2.join();
    sweeper.join();
    f->flush_port(1);
    f->flush_port(2);
    EXPECT_EQ(learn_many(*f, 1, 1000, 40, 0), 16u);
    EXPECT_EQ(learn_many(*f, 2, 2000, 40, 0), 16u);
}
