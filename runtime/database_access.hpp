// runtime/database_access.hpp — what the runtime (and its tests) reach inside a Database: the
// store and the in-process completion signal. Not installed: users never include it.
#pragma once

#include <memory>

#include "durable/database.hpp"
#include "runtime/completion_hub.hpp"
#include "store/store.hpp"

namespace durable::detail {

struct DatabaseAccess {
    static std::shared_ptr<store::Store> store(const Database& db);
    static std::shared_ptr<CompletionHub> completions(const Database& db);
};

// The store behind `db`.
inline std::shared_ptr<store::Store> store_of(const Database& db) {
    return DatabaseAccess::store(db);
}

}  // namespace durable::detail
