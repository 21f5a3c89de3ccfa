// Metrics and the Prometheus text writer: escaping, families, label sets.
#include <doctest/doctest.h>

#include <durable/metrics.hpp>
#include <regex>
#include <sstream>

using namespace durable;

namespace {

std::vector<std::string> sample_lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line[0] != '#') out.push_back(line);
    }
    return out;
}

// name{label="escaped value",...} value — an escaped value has no bare quote or newline.
const std::regex kSample(R"re(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? \S+$)re");

}  // namespace

TEST_CASE("prometheus_escape escapes backslash, double quote and line feed") {
    CHECK(prometheus_escape("plain") == "plain");
    CHECK(prometheus_escape("a\\b") == "a\\\\b");
    CHECK(prometheus_escape("say \"hi\"") == "say \\\"hi\\\"");
    CHECK(prometheus_escape("two\nlines") == "two\\nlines");
}

TEST_CASE("a crafted label value cannot forge a series") {
    Metrics m;
    const std::string crafted = "x\"} 1\nforged_total{victim=\"y\"} 999\n# \\";
    m.counter("durable_things_total", "Things", {{"activity", crafted}}).inc(3);
    m.counter("durable_things_total", "Things", {{"activity", "plain"}}).inc();
    auto text = m.prometheus_text();
    auto lines = sample_lines(text);
    REQUIRE(lines.size() == 2);  // the two series, nothing more
    for (const auto& l : lines) {
        CHECK_MESSAGE(std::regex_match(l, kSample), l);
        CHECK(l.rfind("durable_things_total{", 0) == 0);
    }
    CHECK(text.find("\nforged_total") == std::string::npos);
    CHECK(text.find(prometheus_escape(crafted)) != std::string::npos);
}

TEST_CASE("the writer writes one HELP and TYPE per family and escapes help text") {
    PrometheusWriter w;
    w.family("durable_x", "help with \\ and\nnewline", "gauge");
    w.sample("durable_x", {{"a", "1"}, {"b", "2"}}, 1.5);
    w.sample("durable_x", {}, std::int64_t{7});
    CHECK(w.text() == "# HELP durable_x help with \\\\ and\\nnewline\n# TYPE durable_x gauge\n"
                      "durable_x{a=\"1\",b=\"2\"} 1.5\ndurable_x 7\n");
    CHECK_THROWS_AS(w.family("bad name", "", "gauge"), std::invalid_argument);
    CHECK_THROWS_AS(w.sample("durable_x", {{"bad-label", "v"}}, 1.0), std::invalid_argument);
}

TEST_CASE("histograms keep their labels and add le") {
    Metrics m;
    m.histogram("durable_h_seconds", "H", {{"activity", "a\"b"}}).observe(0.002);
    auto text = m.prometheus_text();
    CHECK(text.find("durable_h_seconds_bucket{activity=\"a\\\"b\",le=\"0.0025\"} 1") != std::string::npos);
    CHECK(text.find("durable_h_seconds_count{activity=\"a\\\"b\"} 1") != std::string::npos);
    for (const auto& l : sample_lines(text)) CHECK_MESSAGE(std::regex_match(l, kSample), l);
}
