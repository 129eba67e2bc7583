// Just enough XML for S3's answers (ListBucketResult, InitiateMultipartUploadResult, Error): flat
// elements found by name, their text entity-decoded. S3 answers are machine-written and never nest an
// element inside another of the same name, which is all this relies on.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace era::cf::xml {

// The text of every <tag>...</tag> directly or indirectly inside `doc`, in order, decoded.
std::vector<std::string> all(std::string_view doc, std::string_view tag);
// The inner XML (not decoded) of every <tag>...</tag>, for walking repeated groups like <Contents>.
std::vector<std::string_view> blocks(std::string_view doc, std::string_view tag);
// The first one's decoded text, or "" if none.
std::string first(std::string_view doc, std::string_view tag);
// &amp; &lt; &gt; &quot; &apos; and numeric references; other text as is.
std::string decode(std::string_view text);
// Escapes text for an element's content.
std::string escape(std::string_view text);

}  // namespace era::cf::xml
