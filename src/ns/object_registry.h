// Who owns which physical D1 name. The registry, never a name's prefix, is the authority on ownership:
// the mapping ns + "_" + name is ambiguous ("a" + "b_q" and "a_b" + "q" are both "a_b_q"), so a name
// that merely starts with a namespace's prefix proves nothing about who owns it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace era::sql {

// Who owns which physical name. Implementations compare names case-insensitively.
class ObjectOwners {
 public:
  virtual ~ObjectOwners() = default;
  virtual std::optional<std::string> owner_of(std::string_view physical) const = 0;
  // The physical names `ns` owns (tables, views, indexes, triggers), in no particular order.
  virtual std::vector<std::string> owned_by(std::string_view ns) const = 0;
};

struct SchemaObject {
  std::string physical;
  std::string ns;
  std::string type;  // "table", "view", "index", "trigger"
};

// An in-memory, thread-safe registry: readers (guards on any thread) share a lock; the one writer
// updates it after a schema change. Persistence is the store's business.
class ObjectRegistry : public ObjectOwners {
 public:
  std::optional<std::string> owner_of(std::string_view physical) const override;
  std::vector<std::string> owned_by(std::string_view ns) const override;
  std::vector<SchemaObject> objects_of(std::string_view ns) const;
  // Every object of every namespace, in no particular order.
  std::vector<SchemaObject> all() const;
  // Namespaces owning at least one object of `type` ("table", ...), sorted.
  std::vector<std::string> namespaces_with(std::string_view type) const;
  void add(const SchemaObject& o);
  void remove(std::string_view physical);
  void clear();
  // Replaces every entry at once (readers see the old set or the new one, never a partial one).
  void replace_all(const std::vector<SchemaObject>& objects);
  // Counts every change of the registry (add, remove, clear, replace_all): equal versions mean the
  // same owners. What was decided against ownership (a statement the guard let through) holds only
  // while the version is the one it was decided at.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  void changed() { version_.fetch_add(1, std::memory_order_acq_rel); }
  std::atomic<uint64_t> version_{0};
  mutable std::shared_mutex mu_;
  std::map<std::string, SchemaObject> by_lower_;  // key: lower-cased physical name
};

}  // namespace era::sql
