#include "kernel/lib/base64.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

std::string encode(const std::string& s) {
    char out[256];
    size_t n = hv::base64_encode(reinterpret_cast<const uint8_t*>(s.data()), s.size(), out, sizeof out);
    return std::string(out, n);
}

// RFC 4648 §10 test vectors.
TEST(Base64, Rfc4648Vectors) {
    EXPECT_EQ(encode(""), "");
    EXPECT_EQ(encode("f"), "Zg==");
    EXPECT_EQ(encode("fo"), "Zm8=");
    EXPECT_EQ(encode("foo"), "Zm9v");
    EXPECT_EQ(encode("foob"), "Zm9vYg==");
    EXPECT_EQ(encode("fooba"), "Zm9vYmE=");
    EXPECT_EQ(encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, AllByteValues) {
    uint8_t in[3] = {0xFF, 0xFE, 0x00};
    char out[8];
    ASSERT_EQ(hv::base64_encode(in, 3, out, sizeof out), 4u);
    EXPECT_STREQ(out, "//4A");
}

TEST(Base64, RefusesShortBuffer) {
    uint8_t in[4] = {1, 2, 3, 4};
    char out[8] = "xxxxxxx";
    EXPECT_EQ(hv::base64_encode(in, 4, out, 7), 0u);
    EXPECT_EQ(out[0], 'x');
    // Exactly the encoded length: no room for the NUL, still encoded.
    EXPECT_EQ(hv::base64_encode(in, 4, out, 8), 8u);
    EXPECT_EQ(std::string(out, 8), "AQIDBA==");
}

}  // namespace
