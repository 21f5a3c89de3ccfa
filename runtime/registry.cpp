// Registry: the listing helpers (the rest is templates in the header).
#include "durable/registry.hpp"

namespace durable {

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
