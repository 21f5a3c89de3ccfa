// WakeBoard: counters on a shared page with futex waits; WorkSignals: the store's watcher.
//
// Layout of `<db>-wake` (4 KiB): a magic number, then one 64-byte slot per word holding the
// counter and its waiter count. Futex operations are the shared (not _PRIVATE) kind: the
// kernel keys them by the file's page, so they work between processes that map the file.
// Ordering: a waiter raises the waiter count before it reads the counter, a writer moves the
// counter before it reads the waiter count (both sequentially consistent), so either the
// waiter sees the new value or the writer sees the waiter and wakes it; FUTEX_WAIT itself
// compares the value again in the kernel.
#include "store/sqlite/wake.hpp"
#include "store/named_thread.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>
#include <spdlog/spdlog.h>
#include <vector>

namespace durable::store::sqlite {
namespace {

constexpr std::size_t kFileSize = 4096;
constexpr std::size_t kSlot = 64;
constexpr std::uint32_t kMagic = 0x64776b31;  // "dwk1"

long futex(std::uint32_t* addr, int op, std::uint32_t val, const timespec* timeout) {
    return ::syscall(SYS_futex, addr, op, val, timeout, nullptr, 0);
}

std::atomic_ref<std::uint32_t> at(std::uint32_t* p) {
    return std::atomic_ref<std::uint32_t>(*p);
}

}  // namespace

std::unique_ptr<WakeBoard> WakeBoard::open(const std::string& db_path) {
    if (db_path.empty() || db_path == ":memory:" || db_path.rfind("file:", 0) == 0) return nullptr;
    std::string path = db_path + "-wake";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return nullptr;
    struct stat st {};
    bool usable = ::fstat(fd, &st) == 0;
    if (usable && st.st_size != static_cast<off_t>(kFileSize)) {
        // Ours is always kFileSize; an empty file is a new one (two processes may both extend it).
        usable = st.st_size == 0 && ::ftruncate(fd, kFileSize) == 0;
        if (!usable && st.st_size != 0) {
            spdlog::warn("store: '{}' is not a wake-up file of durable; hosts on this database poll instead", path);
        }
    }
    if (!usable) {
        ::close(fd);
        return nullptr;
    }
    void* base = ::mmap(nullptr, kFileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        ::close(fd);
        return nullptr;
    }
    // A new file is all zeros, which is a valid board; the magic only marks it as ours.
    auto* magic = static_cast<std::uint32_t*>(base);
    std::uint32_t expected = 0;
    at(magic).compare_exchange_strong(expected, kMagic);
    if (at(magic).load() != kMagic) {
        spdlog::warn("store: '{}' is not a wake-up file of durable; hosts on this database poll instead", path);
        ::munmap(base, kFileSize);
        ::close(fd);
        return nullptr;
    }
    return std::unique_ptr<WakeBoard>(new WakeBoard(fd, base));
}

WakeBoard::WakeBoard(int fd, void* base) : fd_(fd), base_(base) {}

WakeBoard::~WakeBoard() {
    ::munmap(base_, kFileSize);
    ::close(fd_);
}

std::uint32_t* WakeBoard::word(Word w, int field) const {
    auto* slot = static_cast<char*>(base_) + kSlot * (static_cast<std::size_t>(w) + 1);
    return reinterpret_cast<std::uint32_t*>(slot) + field;
}

std::uint32_t WakeBoard::load(Word w) const {
    return at(word(w, 0)).load();
}

bool WakeBoard::has_waiters(Word w) const {
    return at(word(w, 1)).load() != 0;
}

void WakeBoard::bump(Word w) {
    at(word(w, 0)).fetch_add(1);
    if (has_waiters(w)) futex(word(w, 0), FUTEX_WAKE, INT_MAX, nullptr);
}

void WakeBoard::wake(Word w) {
    futex(word(w, 0), FUTEX_WAKE, INT_MAX, nullptr);
}

bool WakeBoard::wait(Word w, std::uint32_t seen, std::chrono::microseconds timeout) {
    auto* seq = word(w, 0);
    auto* waiters = word(w, 1);
    at(waiters).fetch_add(1);
    if (at(seq).load() == seen && timeout.count() > 0) {
        timespec ts{};
        ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000);
        ts.tv_nsec = static_cast<long>((timeout.count() % 1'000'000) * 1000);
        futex(seq, FUTEX_WAIT, seen, &ts);  // EAGAIN (it moved), ETIMEDOUT, EINTR: look below
    }
    at(waiters).fetch_sub(1);
    return at(seq).load() != seen;
}

// ---- WorkSignals ----

WorkSignals::~WorkSignals() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (watcher_.joinable()) {
        board_->wake(WakeBoard::kAny);  // others' watchers wake too, see nothing new and wait again
        watcher_.join();
    }
}

void WorkSignals::committed(unsigned bits) {
    if (bits == 0) return;
    std::lock_guard lock(local_mu_);
    static constexpr std::pair<unsigned, WakeBoard::Word> kinds[] = {
        {kWorkTasks, WakeBoard::kTasks}, {kWorkInbox, WakeBoard::kInbox}, {kWorkInstances, WakeBoard::kInstances}};
    for (auto [bit, w] : kinds) {
        if (!(bits & bit)) continue;
        ++local_[w];
        board_->bump(w);
    }
    ++local_[WakeBoard::kAny];
    board_->bump(WakeBoard::kAny);
}

WorkSignals::Marks WorkSignals::marks() {
    // Under local_mu_, so a bump of this process is in both or in neither.
    std::lock_guard lock(local_mu_);
    Marks m;
    for (int w = 0; w < WakeBoard::kWordCount; ++w) {
        m.shared[w] = board_->load(static_cast<WakeBoard::Word>(w));
        m.local[w] = local_[w];
    }
    return m;
}

std::uint64_t WorkSignals::subscribe(unsigned bits, std::function<void()> on_work) {
    std::lock_guard lock(mu_);
    auto id = next_id_++;
    // The first subscriber starts from now, taken here: work committed once this returns is
    // new to it, whenever the watcher thread gets to run.
    if (subs_.empty()) seen_ = marks();
    subs_.emplace(id, std::make_pair(bits, std::move(on_work)));
    if (!watcher_.joinable()) {
        watcher_ = durable::detail::named_thread("durable-wake", [this] { watch(); });
    }
    cv_.notify_all();
    return id;
}

void WorkSignals::unsubscribe(std::uint64_t id) {
    std::lock_guard lock(mu_);  // the watcher calls back holding mu_: after this, it is not calling
    subs_.erase(id);
}

void WorkSignals::watch() {
    std::unique_lock lock(mu_);
    while (!stop_) {
        if (subs_.empty()) {
            cv_.wait(lock, [&] { return stop_ || !subs_.empty(); });
            continue;
        }
        const std::uint32_t any_seen = seen_.shared[WakeBoard::kAny];
        lock.unlock();
        // Bounded, so a lost wake-up (a writer that died between its commit and its bump)
        // costs at most this much, and stop is seen in time without a wake.
        board_->wait(WakeBoard::kAny, any_seen, std::chrono::milliseconds(100));
        Marks now = marks();
        lock.lock();
        unsigned foreign = 0;
        static constexpr std::pair<unsigned, WakeBoard::Word> kinds[] = {
            {kWorkTasks, WakeBoard::kTasks}, {kWorkInbox, WakeBoard::kInbox}, {kWorkInstances, WakeBoard::kInstances}};
        for (auto [bit, w] : kinds) {
            std::uint32_t moved = now.shared[w] - seen_.shared[w];
            std::uint32_t ours = now.local[w] - seen_.local[w];
            if (moved != ours) foreign |= bit;
        }
        seen_ = now;
        if (foreign == 0 || stop_) continue;
        for (auto& [id, sub] : subs_) {
            if (!(sub.first & foreign)) continue;
            try {
                sub.second();
            } catch (const std::exception& e) {
                spdlog::error("store: a work wake-up callback threw: {}", e.what());
            }
        }
    }
}

}  // namespace durable::store::sqlite
