// tests/unit/test_test_names.cpp — every doctest case name can become a CTest test.
//
// doctest_discover_tests turns each case name into a CTest name through a CMake list, where a
// ';' splits it: such a case was registered as fragments that match no case, so ctest "passed"
// it without running it (three older cases and two new ones were never run that way).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

TEST_CASE("no test case name has a semicolon (CTest would register fragments that run nothing)") {
    namespace fs = std::filesystem;
    const fs::path root = fs::path(DURABLE_SOURCE_DIR) / "tests";
    // The case's name: one or more adjacent string literals after TEST_CASE( or TEST_CASE_TEMPLATE(.
    const std::regex name_re(R"re(TEST_CASE(?:_TEMPLATE)?\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+))re");
    std::vector<std::string> bad;
    int cases = 0;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        if (entry.path().extension() != ".cpp") continue;
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        const std::string source = text.str();
        for (std::sregex_iterator it(source.begin(), source.end(), name_re), end; it != end; ++it) {
            ++cases;
            if ((*it)[1].str().find(';') != std::string::npos) {
                bad.push_back(entry.path().filename().string() + ": " + (*it)[1].str().substr(0, 80));
            }
        }
    }
    CHECK(cases > 100);  // the scan found the suite
    CHECK_MESSAGE(bad.empty(), "case names with ';': " << bad.size() << (bad.empty() ? "" : " first: " + bad.front()));
}
