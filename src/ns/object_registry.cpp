#include "ns/object_registry.h"

#include <mutex>
#include <set>

#include "ns/sql_tokenizer.h"

namespace era::sql {

std::optional<std::string> ObjectRegistry::owner_of(std::string_view physical) const {
  std::shared_lock lock(mu_);
  auto it = by_lower_.find(ascii_lower(physical));
  if (it == by_lower_.end()) return std::nullopt;
  return it->second.ns;
}

std::vector<std::string> ObjectRegistry::owned_by(std::string_view ns) const {
  std::vector<std::string> out;
  for (auto& o : objects_of(ns)) out.push_back(o.physical);
  return out;
}

std::vector<SchemaObject> ObjectRegistry::all() const {
  std::shared_lock lock(mu_);
  std::vector<SchemaObject> out;
  for (const auto& [_, o] : by_lower_) out.push_back(o);
  return out;
}

std::vector<SchemaObject> ObjectRegistry::objects_of(std::string_view ns) const {
  std::shared_lock lock(mu_);
  std::vector<SchemaObject> out;
  for (const auto& [_, o] : by_lower_)
    if (o.ns == ns) out.push_back(o);
  return out;
}

std::vector<std::string> ObjectRegistry::namespaces_with(std::string_view type) const {
  std::shared_lock lock(mu_);
  std::set<std::string> out;
  for (const auto& [_, o] : by_lower_)
    if (o.type == type) out.insert(o.ns);
  return {out.begin(), out.end()};
}

void ObjectRegistry::add(const SchemaObject& o) {
  std::unique_lock lock(mu_);
  by_lower_[ascii_lower(o.physical)] = o;
  changed();
}

void ObjectRegistry::remove(std::string_view physical) {
  std::unique_lock lock(mu_);
  by_lower_.erase(ascii_lower(physical));
  changed();
}

void ObjectRegistry::replace_all(const std::vector<SchemaObject>& objects) {
  std::map<std::string, SchemaObject> next;
  for (const auto& o : objects) next[ascii_lower(o.physical)] = o;
  std::unique_lock lock(mu_);
  by_lower_.swap(next);
  changed();
}

void ObjectRegistry::clear() {
  std::unique_lock lock(mu_);
  by_lower_.clear();
  changed();
}

}  // namespace era::sql
