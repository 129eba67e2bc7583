#include "http/json_limits.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "util/error.h"

namespace era::http {
namespace {

using nlohmann::json;

// Builds the tree as nlohmann's own DOM parser does (a stack of open containers), but counts every
// value and checks every string and every level before it stores anything. Returning false stops
// sax_parse at once; `stop` then says which limit was hit.
class LimitedBuilder {
 public:
  enum class Stop { none, depth, values, string, syntax };

  LimitedBuilder(json& root, const JsonLimits& limits) : root_(root), limits_(limits) {}

  bool null() { return put(json(nullptr)); }
  bool boolean(bool v) { return put(json(v)); }
  bool number_integer(json::number_integer_t v) { return put(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return put(json(v)); }
  bool number_float(json::number_float_t v, const std::string&) { return put(json(v)); }
  bool string(std::string& v) { return string_ok(v) && put(json(std::move(v))); }
  bool binary(json::binary_t&) { return fail(Stop::syntax); }  // JSON text has no binary values
  bool start_object(std::size_t) { return open(json::value_t::object); }
  bool start_array(std::size_t) { return open(json::value_t::array); }
  bool key(std::string& k) {
    if (!string_ok(k)) return false;
    key_ = &(*stack_.back())[std::move(k)];  // a repeated key: the last value wins, as json::parse does
    return true;
  }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return fail(Stop::syntax);
  }

  Stop stop() const { return stop_; }
  const JsonParseStats& stats() const { return stats_; }

 private:
  bool fail(Stop s) {
    stop_ = s;
    return false;
  }
  bool string_ok(const std::string& s) { return s.size() <= limits_.max_string || fail(Stop::string); }
  bool count() { return ++stats_.values <= limits_.max_values || fail(Stop::values); }

  // Stores `v` where the parse is: the root, the next array element, or the value of the last key.
  json* place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.get_ref<json::array_t&>().push_back(std::move(v));
      return &top.get_ref<json::array_t&>().back();
    }
    *key_ = std::move(v);
    return key_;
  }
  bool put(json&& v) {
    if (!count()) return false;
    place(std::move(v));
    return true;
  }
  bool open(json::value_t type) {
    if (!count()) return false;
    if (stack_.size() + 1 > limits_.max_depth) return fail(Stop::depth);
    stack_.push_back(place(json(type)));
    if (stack_.size() > stats_.max_depth_seen) stats_.max_depth_seen = stack_.size();
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  json& root_;
  const JsonLimits& limits_;
  std::vector<json*> stack_;
  json* key_ = nullptr;
  Stop stop_ = Stop::none;
  JsonParseStats stats_;
};

}  // namespace

json parse_json_body(std::string_view text, const JsonLimits& limits, JsonParseStats* stats) {
  json root;
  LimitedBuilder builder(root, limits);
  const bool ok = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, true);
  if (stats) *stats = builder.stats();
  using Stop = LimitedBuilder::Stop;
  const Stop stop = ok ? Stop::none : builder.stop() == Stop::none ? Stop::syntax : builder.stop();
  switch (stop) {
    case Stop::none: break;
    case Stop::depth:
      throw ApiError(400, "json_too_deep",
                     "the request body nests arrays and objects deeper than " + std::to_string(limits.max_depth) +
                         " levels");
    case Stop::values:
      throw ApiError(413, "json_too_large",
                     "the request body holds more than " + std::to_string(limits.max_values) +
                         " JSON values, the limit for this request");
    case Stop::string:
      throw ApiError(413, "json_too_large",
                     "a string in the request body is longer than " + std::to_string(limits.max_string) +
                         " bytes, the limit for this request");
    case Stop::syntax: throw ApiError(400, "invalid_json", "the request body is not valid JSON");
  }
  if (!root.is_object()) throw ApiError(400, "invalid_json", "the request body must be a JSON object");
  return root;
}

}  // namespace era::http
