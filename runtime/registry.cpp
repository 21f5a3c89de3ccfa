// Registry: the listing helpers (the rest is templates in the header).
#include "durable/registry.hpp"

namespace durable {

namespace {

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

}  // namespace

int compare_versions(std::string_view a, std::string_view b) {
    if (a.empty() || b.empty()) return a.empty() == b.empty() ? 0 : (a.empty() ? -1 : 1);
    for (;;) {
        auto da = a.find('.'), db = b.find('.');
        auto sa = a.substr(0, da), sb = b.substr(0, db);
        int c = 0;
        if (all_digits(sa) && all_digits(sb)) {
            // Numerically: leading zeros do not count, a longer number is the larger.
            while (sa.size() > 1 && sa.front() == '0') sa.remove_prefix(1);
            while (sb.size() > 1 && sb.front() == '0') sb.remove_prefix(1);
            c = sa.size() != sb.size() ? (sa.size() < sb.size() ? -1 : 1) : sa.compare(sb);
        } else {
            c = sa.compare(sb);
        }
        if (c != 0) return c < 0 ? -1 : 1;
        bool end_a = da == std::string_view::npos, end_b = db == std::string_view::npos;
        if (end_a || end_b) return end_a == end_b ? 0 : (end_a ? -1 : 1);
        a.remove_prefix(da + 1);
        b.remove_prefix(db + 1);
    }
}

std::vector<std::string> Registry::orchestrator_versions(std::string_view name) const {
    std::vector<std::string> out;
    auto it = orchestrators_.find(name);
    if (it != orchestrators_.end()) {
        for (const auto& [version, fn] : it->second) out.push_back(version);
    }
    return out;
}

std::optional<std::string> Registry::newest_version(std::string_view name) const {
    auto it = orchestrators_.find(name);
    if (it == orchestrators_.end() || it->second.empty()) return std::nullopt;
    return it->second.rbegin()->first;
}

std::vector<std::string> Registry::orchestrator_names() const {
    std::vector<std::string> out;
    for (const auto& [name, fn] : orchestrators_) out.push_back(name);
    return out;
}

std::vector<std::string> Registry::activity_names() const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : activities_) out.push_back(name);
    return out;
}

Registry Registry::filtered(const std::function<bool(bool orchestrator, const std::string& name)>& keep) const {
    Registry out;
    for (const auto& [name, fn] : orchestrators_) {
        if (keep(true, name)) out.orchestrators_[name] = fn;
    }
    for (const auto& [name, entry] : activities_) {
        if (keep(false, name)) out.activities_[name] = entry;
    }
    out.resources_ = resources_;
    return out;
}

}  // namespace durable
