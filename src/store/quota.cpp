#include "store/quota.h"

#include <string>

#include "ns/sql_tokenizer.h"
#include "util/error.h"

namespace era {
namespace {

ApiError exceeded(const char* store, const std::string& ns, uint64_t quota, const std::string& detail) {
  return ApiError(507, "quota_exceeded",
                  std::string(store) + " quota exceeded: namespace '" + ns + "' may hold " + std::to_string(quota) +
                      " bytes (quota." + (std::string(store) == "KV" ? "kv" : std::string(store) == "R2" ? "r2" : "d1") +
                      "_bytes)" + detail + "; nothing was written");
}

// Bytes of `type` the namespace holds, from the registry's maintained tally.
int64_t used(ResourceRegistry& registry, const char* type, const std::string& ns) {
  ResourceStats s = registry.stats(ns, std::nullopt);
  auto it = s.by_namespace_type.find(ns);
  if (it == s.by_namespace_type.end()) return 0;
  auto t = it->second.find(type);
  return t == it->second.end() ? 0 : t->second.size;
}

// The size of one resource (the bytes a write replacing it frees), 0 when there is none.
int64_t size_of(ResourceRegistry& registry, const char* type, const std::string& ns, const std::string& key) {
  ResourceQuery q;
  q.type = type;
  q.ns = ns;
  q.key_prefix = key;
  q.limit = 1;
  ResourcePage page = registry.list(q);
  if (!page.resources.empty() && page.resources[0].key == key) return page.resources[0].size.value_or(0);
  return 0;
}

class QuotaKv : public KvStore {
 public:
  QuotaKv(KvStore& inner, ResourceRegistry& registry, uint64_t quota) : inner_(inner), registry_(registry), quota_(quota) {}

  void put(const std::string& ns, const std::string& key, const KvValue& value) override {
    const int64_t after = used(registry_, "kv", ns) - size_of(registry_, "kv", ns, key) + int64_t(value.value.size());
    if (after > int64_t(quota_))
      throw exceeded("KV", ns, quota_, ": this value would bring it to " + std::to_string(after));
    inner_.put(ns, key, value);
  }
  std::optional<KvValue> get(const std::string& ns, const std::string& key) override { return inner_.get(ns, key); }
  bool cached(const std::string& ns, const std::string& key, std::optional<KvValue>& out) override {
    return inner_.cached(ns, key, out);
  }
  void remove(const std::string& ns, const std::string& key) override { inner_.remove(ns, key); }
  KvPage list(const std::string& ns, const std::string& prefix, int limit, const std::string& cursor) override {
    return inner_.list(ns, prefix, limit, cursor);
  }

 private:
  KvStore& inner_;
  ResourceRegistry& registry_;
  uint64_t quota_;
};

class QuotaR2 : public ObjectStore {
 public:
  QuotaR2(ObjectStore& inner, ResourceRegistry& registry, uint64_t quota)
      : inner_(inner), registry_(registry), quota_(quota) {}

  ObjectInfo put(const std::string& ns, const std::string& key, const PutOptions& options,
                 const ChunkSource& source) override {
    // What the namespace may still take for this object.
    const int64_t room = int64_t(quota_) - used(registry_, "r2", ns) + size_of(registry_, "r2", ns, key);
    if (options.size && int64_t(*options.size) > room)
      throw exceeded("R2", ns, quota_, ": this object of " + std::to_string(*options.size) + " bytes does not fit");
    if (options.size) return inner_.put(ns, key, options, source);
    // Unknown length: count while streaming; throwing from the source makes the store keep nothing.
    return inner_.put(ns, key, options, [&](const ChunkSink& sink) {
      int64_t seen = 0;
      source([&](const char* data, size_t n) {
        seen += int64_t(n);
        if (seen > room) throw exceeded("R2", ns, quota_, ": the upload passed the room left");
        return sink(data, n);
      });
    });
  }
  std::unique_ptr<ObjectReader> get(const std::string& ns, const std::string& key, const GetOptions& options) override {
    return inner_.get(ns, key, options);
  }
  std::optional<ObjectInfo> head(const std::string& ns, const std::string& key) override { return inner_.head(ns, key); }
  bool remove(const std::string& ns, const std::string& key) override { return inner_.remove(ns, key); }
  ObjectPage list(const std::string& ns, const ListOptions& options) override { return inner_.list(ns, options); }

 private:
  ObjectStore& inner_;
  ResourceRegistry& registry_;
  uint64_t quota_;
};

// Whether every statement in `sql` starts with DELETE or DROP: what frees space.
bool only_frees(const std::string& sql) {
  bool at_start = true, any = false;
  for (const auto& t : sql::tokenize(sql)) {
    if (sql::is_trivia(t)) continue;
    if (t.kind == sql::Tok::Semi) {
      at_start = true;
      continue;
    }
    if (at_start) {
      if (t.kind != sql::Tok::Ident || !(sql::iequals(t.text, "DELETE") || sql::iequals(t.text, "DROP"))) return false;
      any = true;
      at_start = false;
    }
  }
  return any;
}

class QuotaD1 : public SqlStore {
 public:
  QuotaD1(SqlStore& inner, uint64_t quota) : inner_(inner), quota_(quota) {}

  SqlResult query(const std::string& ns, const SqlStatement& st) override {
    return guarded(ns, {st}, [&](const std::vector<SqlStatement>& l) { return inner_.query(ns, l[0]); });
  }
  SqlResult exec(const std::string& ns, const SqlStatement& st, int& statements) override {
    return guarded(ns, {st}, [&](const std::vector<SqlStatement>& l) { return inner_.exec(ns, l[0], statements); });
  }
  std::vector<SqlResult> batch(const std::string& ns, const std::vector<SqlStatement>& list) override {
    return guarded(ns, list, [&](const std::vector<SqlStatement>& l) { return inner_.batch(ns, l); });
  }
  std::vector<SqlTable> tables(const std::string& ns) override { return inner_.tables(ns); }
  std::vector<std::string> namespaces() override { return inner_.namespaces(); }
  std::vector<std::pair<std::string, std::string>> all_tables() override { return inner_.all_tables(); }

 private:
  // Over the quota, statements that write run as read-only ones (the store refuses a write among them
  // before anything runs), and that refusal is reported as the quota's.
  template <typename Run>
  auto guarded(const std::string& ns, std::vector<SqlStatement> list, Run run) -> decltype(run(list)) {
    bool all_read_only = true;
    for (const auto& st : list) all_read_only = all_read_only && st.read_only;
    if (all_read_only) return run(list);
    int64_t bytes = 0;
    for (const auto& t : inner_.tables(ns)) bytes += t.bytes.value_or(0);
    if (bytes < int64_t(quota_)) return run(list);
    for (auto& st : list)
      if (!only_frees(st.sql)) st.read_only = true;
    try {
      return run(list);
    } catch (const ApiError& e) {
      if (e.code() != "read_only_token") throw;
      throw exceeded("D1", ns, quota_, ": its tables take " + std::to_string(bytes) +
                                           " bytes, so only reads, DELETE and DROP run until it frees space");
    }
  }

  SqlStore& inner_;
  uint64_t quota_;
};

class QuotaBackend : public Backend {
 public:
  QuotaBackend(std::unique_ptr<Backend> inner, QuotaLimits limits) : inner_(std::move(inner)) {
    if (limits.kv_bytes) kv_ = std::make_unique<QuotaKv>(inner_->kv(), inner_->registry(), limits.kv_bytes);
    if (limits.r2_bytes) r2_ = std::make_unique<QuotaR2>(inner_->r2(), inner_->registry(), limits.r2_bytes);
    if (limits.d1_bytes) d1_ = std::make_unique<QuotaD1>(inner_->d1(), limits.d1_bytes);
  }

  KvStore& kv() override { return kv_ ? *kv_ : inner_->kv(); }
  SessionStore& sessions() override { return inner_->sessions(); }
  ObjectStore& r2() override { return r2_ ? *r2_ : inner_->r2(); }
  SqlStore& d1() override { return d1_ ? *d1_ : inner_->d1(); }
  ResourceRegistry& registry() override { return inner_->registry(); }
  void start(const std::string& instance) override { inner_->start(instance); }
  void close() override { inner_->close(); }
  std::vector<CheckItem> check() override { return inner_->check(); }

 private:
  std::unique_ptr<Backend> inner_;
  std::unique_ptr<KvStore> kv_;
  std::unique_ptr<ObjectStore> r2_;
  std::unique_ptr<SqlStore> d1_;
};

}  // namespace

std::unique_ptr<Backend> with_quotas(std::unique_ptr<Backend> inner, QuotaLimits limits) {
  if (!limits.any()) return inner;
  return std::make_unique<QuotaBackend>(std::move(inner), limits);
}

}  // namespace era
