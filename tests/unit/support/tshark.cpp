#include "tests/unit/support/tshark.hpp"

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <fstream>

namespace hv::test {

std::string write_temp_file(const std::string& name, const uint8_t* data, size_t len) {
    char dir[] = "/tmp/hv-test-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
        ADD_FAILURE() << "mkdtemp failed";
        return {};
    }
    std::string path = std::string(dir) + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(len));
    if (!out) ADD_FAILURE() << "cannot write " << path;
    return path;
}

std::vector<std::string> tshark_fields(const std::string& path, const std::vector<std::string>& fields) {
    std::vector<std::string> lines;
    if (system("command -v tshark >/dev/null 2>&1") != 0) {
        ADD_FAILURE() << "tshark is not installed (Debian package tshark; tools/hv setup installs it)";
        return lines;
    }
    std::string cmd = "tshark -r '" + path + "' -T fields";
    for (const auto& f : fields) cmd += " -e " + f;
    std::string err_path = path + ".stderr";
    cmd += " 2>'" + err_path + "'";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) {
        ADD_FAILURE() << "popen failed: " << cmd;
        return lines;
    }
    std::string cur;
    for (int c; (c = fgetc(p)) != EOF;) {
        if (c == '\n') {
            lines.push_back(cur);
            cur.clear();
        } else {
            cur += static_cast<char>(c);
        }
    }
    int status = pclose(p);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::ifstream err(err_path);
        std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
        ADD_FAILURE() << "tshark failed (" << status << ") on " << path << ": " << text;
    }
    return lines;
}

}  // namespace hv::test
