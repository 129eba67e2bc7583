#include "store/cloudflare/xml.h"

#include <pugixml.hpp>

#include "ns/names.h"

namespace era::cf::xml {
namespace {

// Every text node is valid UTF-8 (pugixml writes what a reference names, even a surrogate, which no
// XML document may contain).
bool text_is_valid(const pugi::xml_node& n) {
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) {
      if (!ns::is_valid_utf8(c.value())) return false;
    }
    if (!text_is_valid(c)) return false;
  }
  return true;
}

// Whether the document has a character reference to U+0000 ("&#0;", "&#x00;", ...). pugixml would
// write a NUL into its NUL-terminated text and silently cut the text there; no XML document may hold
// one. (Also counted inside CDATA or comments, where it is literal text: S3 answers have neither.)
bool references_nul(std::string_view doc) {
  for (size_t i = doc.find("&#"); i != std::string_view::npos; i = doc.find("&#", i + 2)) {
    size_t j = i + 2;
    const bool hex = j < doc.size() && (doc[j] == 'x' || doc[j] == 'X');
    if (hex) ++j;
    const size_t digits = j;
    bool zero = true;
    for (; j < doc.size(); ++j) {
      const char c = doc[j];
      const bool digit = (c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
      if (!digit) break;
      if (c != '0') zero = false;
    }
    if (j > digits && j < doc.size() && doc[j] == ';' && zero) return true;
  }
  return false;
}

void collect(const pugi::xml_node& n, std::string_view tag, std::vector<pugi::xml_node>& out, bool first_only) {
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    if (tag == c.name()) {
      out.push_back(c);
      if (first_only) return;
      continue;
    }
    collect(c, tag, out, first_only);
    if (first_only && !out.empty()) return;
  }
}

std::string text_of(const pugi::xml_node& n) {
  std::string out;
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling())
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) out += c.value();
  return out;
}

}  // namespace

Element parse(std::string_view doc) {
  if (references_nul(doc)) return {};
  auto d = std::make_shared<pugi::xml_document>();
  // parse_ws_pcdata keeps text made only of spaces (a key " " is data); no EOL rewriting inside text
  // beyond what XML itself requires.
  const auto opts = pugi::parse_default | pugi::parse_ws_pcdata;
  if (!d->load_buffer(doc.data(), doc.size(), opts, pugi::encoding_utf8)) return {};
  if (!d->document_element() || !text_is_valid(*d)) return {};
  return Element(d, d->internal_object());
}

std::string Element::first(std::string_view tag) const {
  if (!node_) return "";
  std::vector<pugi::xml_node> found;
  collect(pugi::xml_node(node_), tag, found, true);
  return found.empty() ? "" : text_of(found.front());
}

std::vector<Element> Element::all(std::string_view tag) const {
  std::vector<Element> out;
  if (!node_) return out;
  std::vector<pugi::xml_node> found;
  collect(pugi::xml_node(node_), tag, found, false);
  for (const auto& n : found) out.push_back(Element(doc_, n.internal_object()));
  return out;
}

std::string Element::text() const { return node_ ? text_of(pugi::xml_node(node_)) : ""; }

std::string escape(std::string_view t) {
  std::string out;
  for (char c : t) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace era::cf::xml
