// Fan-out/fan-in word count over N documents.
#include "orchestrations/word_count.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <fmt/format.h>

#include "orchestrations/policies.hpp"

namespace durable::orchestrations {
namespace {

using namespace std::chrono_literals;

// A small vocabulary; lower indexes are drawn more often (roughly Zipf), so the top words are
// stable and the counts are interesting.
constexpr std::array<const char*, 32> kVocabulary = {
    "the",     "durable", "host",    "lease",   "history", "replay",  "timer",   "event",
    "sqlite",  "commit",  "episode", "worker",  "client",  "saga",    "order",   "retry",
    "breaker", "fanout",  "monitor", "approval", "payment", "stock",  "ship",    "hotel",
    "flight",  "car",     "window",  "journal", "fsync",   "claim",   "version", "inbox"};

WordCountResult merge(const std::vector<DocumentCount>& parts, int top) {
    WordCountResult r;
    std::map<std::string, std::int64_t> totals;
    for (const auto& p : parts) {
        r.total_words += p.words;
        for (const auto& [w, n] : p.counts) totals[w] += n;
    }
    r.documents = static_cast<int>(parts.size());
    r.distinct_words = static_cast<std::int64_t>(totals.size());
    std::vector<WordFrequency> all;
    all.reserve(totals.size());
    for (const auto& [w, n] : totals) all.push_back(WordFrequency{w, n});
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.count > b.count; });
    if (top >= 0 && all.size() > static_cast<std::size_t>(top)) all.resize(static_cast<std::size_t>(top));
    r.top = std::move(all);
    if (!parts.empty()) r.host = parts.back().host;
    return r;
}

DocumentCount count_document(ActivityContext& ctx, const DocumentRequest& req) {
    simulate(ctx, req.sim, fmt::format("count/{}/{}", req.seed, req.index));
    std::string text = req.generate ? generate_document(req.seed, req.index, req.words) : req.text;
    DocumentCount c;
    c.index = req.index;
    c.counts = count_words_in(text);
    for (const auto& [w, n] : c.counts) c.words += n;
    c.host = host_label();
    return c;
}

}  // namespace

std::string generate_document(std::uint64_t seed, int index, int words) {
    std::string text;
    text.reserve(static_cast<std::size_t>(std::max(words, 0)) * 7);
    for (int i = 0; i < words; ++i) {
        double u = deterministic_unit(seed, "doc", index, i);
        auto pick = static_cast<std::size_t>(u * u * kVocabulary.size());  // squares favour low indexes
        if (!text.empty()) text += ' ';
        text += kVocabulary[std::min(pick, kVocabulary.size() - 1)];
    }
    return text;
}

std::map<std::string, std::int64_t> count_words_in(const std::string& text) {
    std::map<std::string, std::int64_t> counts;
    std::string word;
    auto flush = [&] {
        if (!word.empty()) ++counts[word];
        word.clear();
    };
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '\'') {
            word += static_cast<char>(std::tolower(c));
        } else {
            flush();
        }
    }
    flush();
    return counts;
}

WordCountResult expected_word_count(const WordCountRequest& request) {
    std::vector<DocumentCount> parts;
    int n = request.texts.empty() ? request.documents : static_cast<int>(request.texts.size());
    for (int i = 0; i < n; ++i) {
        std::string text = request.texts.empty() ? generate_document(request.seed, i, request.words_per_document)
                                                 : request.texts[static_cast<std::size_t>(i)];
        DocumentCount c;
        c.index = i;
        c.counts = count_words_in(text);
        for (const auto& [w, k] : c.counts) c.words += k;
        parts.push_back(std::move(c));
    }
    return merge(parts, request.top);
}

Task<WordCountResult> word_count(OrchestrationContext& ctx, WordCountRequest request) {
    int n = request.texts.empty() ? request.documents : static_cast<int>(request.texts.size());
    if (n < 0) throw InvalidInput(fmt::format("word_count needs a document count >= 0, got {}", n));
    ctx.set_custom_status(Json{{"documents", n}, {"stage", "counting"}});
    std::vector<Task<DocumentCount>> calls;
    calls.reserve(static_cast<std::size_t>(n));
    ActivityOptions retry{durable_retry(3, 100ms)};
    for (int i = 0; i < n; ++i) {
        DocumentRequest doc;
        doc.index = i;
        if (!request.texts.empty()) {
            doc.generate = false;
            doc.text = request.texts[static_cast<std::size_t>(i)];
        }
        doc.words = request.words_per_document;
        doc.seed = request.seed;
        doc.sim = request.sim;
        calls.push_back(ctx.call_activity<DocumentCount>("count_words", doc, retry));
    }
    auto parts = co_await when_all(std::move(calls));
    ctx.set_custom_status(Json{{"documents", n}, {"stage", "done"}});
    co_return merge(parts, request.top);
}

void register_word_count(Registry& registry) {
    registry.add_orchestrator(kWordCount, word_count);
    registry.add_activity("count_words", count_document, ActivitySettings{retrying_policy()});
}

}  // namespace durable::orchestrations
