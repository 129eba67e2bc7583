// Fuzz target: the S3 XML answers the cloudflare backend's R2 client reads (store/cloudflare/xml.h),
// through the public functions cloudflare_r2.cpp calls: the fields of an answer, the repeated groups
// of a listing walked field by field, and escape(). Two APIs are followed (fuzz.cmake picks): the
// hand-written scanner's free functions (first, blocks) and the pugixml reader's parse() + Element.
// Any implementation behind them must hold:
// - no crash, hang or exception on any document (S3 answers come from the network);
// - a field decoded from a document that is valid UTF-8 is valid UTF-8 (keys, ETags and tokens flow
//   into JSON answers and into the next request);
// - escape() is undone by reading the text back: first("<K>" + escape(x) + "</K>", "K") == x for any
//   valid UTF-8 x without control characters (XML 1.0 cannot carry most; CR is normalized).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ns/names.h"
#include "store/cloudflare/xml.h"

namespace {

void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "\n==== s3_xml: %s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

bool xml_text_char_ok(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 && c != '\t' && c != '\n') return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace era::cf;
  const std::string_view doc(reinterpret_cast<const char*>(data), size);
  const bool utf8 = era::ns::is_valid_utf8(doc);
  auto check = [&](std::string v) {
    if (utf8 && !era::ns::is_valid_utf8(v)) fail("a decoded field is not valid UTF-8", v);
    return v;
  };
  // What R2's client reads: errors, list pages (Contents and CommonPrefixes groups), uploads.
  const char* const kTop[] = {"Code", "Message", "IsTruncated", "NextContinuationToken", "UploadId", "ETag"};
  const char* const kContents[] = {"Key", "Size", "ETag", "LastModified"};
#if ERA_XML_ELEMENT_API
  const xml::Element root = xml::parse(doc);
  for (const char* tag : kTop) check(root.first(tag));
  for (const auto& block : root.all("Contents"))
    for (const char* tag : kContents) check(block.first(tag));
  for (const auto& block : root.all("CommonPrefixes")) check(block.first("Prefix"));
  auto read_back = [](const std::string& d, const char* tag) { return xml::parse(d).first(tag); };
#else
  for (const char* tag : kTop) check(xml::first(doc, tag));
  for (const auto& block : xml::blocks(doc, "Contents"))
    for (const char* tag : kContents) check(xml::first(block, tag));
  for (const auto& block : xml::blocks(doc, "CommonPrefixes")) check(xml::first(block, "Prefix"));
  auto read_back = [](const std::string& d, const char* tag) { return xml::first(d, tag); };
#endif

  if (utf8 && xml_text_char_ok(doc)) {
    const std::string wrapped = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Part><ETag>" + xml::escape(doc) + "</ETag></Part>";
    const std::string back = read_back(wrapped, "ETag");
    if (back != doc) fail("escape() then first() does not give the text back", back);
  }
  return 0;
}
