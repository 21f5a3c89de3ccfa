// The registry of store openers and the rule that tells a PostgreSQL target from a file path.
#include "store/opener.hpp"

#include <cctype>
#include <chrono>
#include <map>
#include <mutex>

namespace durable::store {
namespace {

struct Registry {
    std::mutex mu;
    std::map<StoreKind, StoreOpener> openers;  // guarded by mu
};

Registry& registry() {
    static Registry r;  // constructed on first use: safe from other static initialisers
    return r;
}

bool starts_with(const std::string& s, const char* prefix) {
    return s.rfind(prefix, 0) == 0;
}

}  // namespace

Millis Store::now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::vector<InboxRow> Store::owned_inbox_since(const std::string& owner, Millis now, int limit, InboxCursor& cursor) {
    cursor = InboxCursor{};
    return owned_inbox(owner, now, limit);
}

StoreInfo Store::info() const {
    return StoreInfo{"unknown", "", ""};
}

StoreKind store_kind(const std::string& target) {
    if (starts_with(target, "postgresql://") || starts_with(target, "postgres://")) return StoreKind::Postgres;
    // libpq's key=value form: the first word is a keyword directly followed by '=' (a file
    // path like "./a=b" starts with a character no keyword has).
    std::size_t i = 0;
    while (i < target.size() && std::isspace(static_cast<unsigned char>(target[i]))) ++i;
    std::size_t start = i;
    while (i < target.size() && (std::islower(static_cast<unsigned char>(target[i])) || target[i] == '_')) ++i;
    if (i > start) {
        while (i < target.size() && target[i] == ' ') ++i;
        if (i < target.size() && target[i] == '=') return StoreKind::Postgres;
    }
    return StoreKind::Sqlite;
}

bool register_store_opener(StoreKind kind, StoreOpener opener) {
    auto& r = registry();
    std::lock_guard lock(r.mu);
    r.openers[kind] = std::move(opener);
    return true;
}

StoreOpener find_store_opener(StoreKind kind) {
    auto& r = registry();
    std::lock_guard lock(r.mu);
    auto it = r.openers.find(kind);
    return it == r.openers.end() ? StoreOpener() : it->second;
}

}  // namespace durable::store
