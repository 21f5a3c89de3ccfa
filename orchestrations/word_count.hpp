// orchestrations/word_count.hpp — fan-out/fan-in: count the words of N documents.
//
// `word_count` starts one `count_words` activity per document at once (N may be thousands),
// waits for all of them with when_all, and merges their counts into totals and the most
// frequent words. Documents are either given (`texts`) or generated deterministically from
// `seed` and the document's index (`documents` of them, `words_per_document` words each), so
// the result of a generated run is known in advance: see expected_word_count().
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <durable/durable.hpp>

#include "orchestrations/simulation.hpp"

namespace durable::orchestrations {

inline constexpr const char* kWordCount = "word_count";

struct WordCountRequest {
    int documents = 10;             // generated documents, when `texts` is empty
    int words_per_document = 50;
    std::vector<std::string> texts; // given documents (then `documents` is ignored)
    std::uint64_t seed = 1;         // generates the documents
    int top = 5;                    // how many of the most frequent words to report
    Simulation sim;                 // per count_words call
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(WordCountRequest, documents, words_per_document, texts, seed, top,
                                                sim)

struct DocumentRequest {
    int index = 0;
    bool generate = true;           // true: generate `words` words from seed and index
    std::string text;               // the document, when not generated
    int words = 0;
    std::uint64_t seed = 0;
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DocumentRequest, index, generate, text, words, seed, sim)

struct DocumentCount {
    int index = 0;
    std::int64_t words = 0;
    std::map<std::string, std::int64_t> counts;
    std::string host;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DocumentCount, index, words, counts, host)

struct WordFrequency {
    std::string word;
    std::int64_t count = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(WordFrequency, word, count)

struct WordCountResult {
    int documents = 0;
    std::int64_t total_words = 0;
    std::int64_t distinct_words = 0;
    std::vector<WordFrequency> top;  // most frequent first; ties by word
    std::string host;                // the host that counted the last document
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(WordCountResult, documents, total_words, distinct_words, top, host)

Task<WordCountResult> word_count(OrchestrationContext& ctx, WordCountRequest request);

// The generated text of document `index` under `seed` (deterministic).
std::string generate_document(std::uint64_t seed, int index, int words);
// Counts the words of `text` (lower-cased runs of letters, digits and apostrophes).
std::map<std::string, std::int64_t> count_words_in(const std::string& text);
// The result word_count gives for `request`, computed in-process (host field left empty).
WordCountResult expected_word_count(const WordCountRequest& request);

// Registers word_count and count_words.
void register_word_count(Registry& registry);

}  // namespace durable::orchestrations
