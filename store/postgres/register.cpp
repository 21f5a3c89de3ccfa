// Registers the PostgreSQL store with Database::open (store/opener.hpp) when durable_postgres
// is linked. The durable_postgres CMake target tells the linker to keep this file's symbol
// (-u durable_register_postgres_store): from a static library an object file nothing refers
// to would otherwise be left out, and its registration with it.
#include "durable/database.hpp"
#include "store/opener.hpp"
#include "store/postgres/postgres_store.hpp"

extern "C" {
// Referenced by the link line only; true once registered.
extern const bool durable_register_postgres_store;
const bool durable_register_postgres_store = durable::store::register_store_opener(
    durable::store::StoreKind::Postgres,
    [](const std::string& target, const durable::DatabaseOptions& options) {
        durable::store::PostgresOptions o;
        o.synchronous_commit = options.fsync_every_commit;
        o.read_only = options.read_only;
        o.connect_wait = options.connect_wait;
        o.change_feed_max_age_ms = options.feed_max_age.count();
        o.change_feed_max_rows = options.feed_max_rows;
        return durable::store::open_postgres(target, o);
    });
}
