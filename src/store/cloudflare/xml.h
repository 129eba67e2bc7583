// S3's XML answers (ListBucketResult, InitiateMultipartUploadResult, CompleteMultipartUploadResult,
// Error), read with pugixml: a real parser, so entities, character references, CDATA and comments mean
// what XML says. A document that is not well-formed, or whose text is not valid UTF-8 without NUL (a
// reference to a surrogate or to U+0000), reads as empty: callers see no elements, as for a body that
// is not XML at all.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pugi {
class xml_document;
struct xml_node_struct;
}  // namespace pugi

namespace era::cf::xml {

// One element of a parsed document (copies share the document).
class Element {
 public:
  Element() = default;
  explicit operator bool() const { return node_ != nullptr; }
  // The decoded text of the first element named `tag` below this one (document order); "" if none.
  std::string first(std::string_view tag) const;
  // Every element named `tag` below this one, in document order, not descending into a match.
  std::vector<Element> all(std::string_view tag) const;
  // This element's own decoded text.
  std::string text() const;

 private:
  friend Element parse(std::string_view doc);
  Element(std::shared_ptr<pugi::xml_document> doc, pugi::xml_node_struct* node) : doc_(std::move(doc)), node_(node) {}
  std::shared_ptr<pugi::xml_document> doc_;
  pugi::xml_node_struct* node_ = nullptr;
};

// The document (an element above its root); empty when `doc` is not well-formed or not valid text.
Element parse(std::string_view doc);

// Escapes text for an element's content.
std::string escape(std::string_view text);

}  // namespace era::cf::xml
