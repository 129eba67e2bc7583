// S3 XML answers read through pugixml: entities and references decoded as XML says, and text that no
// XML document may hold (a reference to U+0000 or to a surrogate) refused instead of passed on.
#include <doctest/doctest.h>

#include "ns/names.h"
#include "store/cloudflare/xml.h"

namespace xml = era::cf::xml;

TEST_CASE("xml: a ListBucketResult, its groups and their fields") {
  const std::string doc = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>ns/</Prefix><IsTruncated>true</IsTruncated>
  <Contents><Key>ns/a%20b</Key><Size>5</Size><ETag>&quot;abc&quot;</ETag></Contents>
  <Contents><Key>ns/c</Key><Size>0</Size></Contents>
  <Contents/>
  <CommonPrefixes><Prefix>ns/dir/</Prefix></CommonPrefixes>
  <NextContinuationToken>t&amp;k</NextContinuationToken>
</ListBucketResult>)";
  const auto d = xml::parse(doc);
  REQUIRE(d);
  auto contents = d.all("Contents");
  REQUIRE(contents.size() == 3);
  CHECK(contents[0].first("Key") == "ns/a%20b");
  CHECK(contents[0].first("ETag") == "\"abc\"");
  CHECK(contents[1].first("Size") == "0");
  CHECK(contents[2].first("Key").empty());
  CHECK(d.first("Prefix") == "ns/");  // document order: the list's own Prefix comes first
  auto prefixes = d.all("CommonPrefixes");
  REQUIRE(prefixes.size() == 1);
  CHECK(prefixes[0].first("Prefix") == "ns/dir/");
  CHECK(d.first("IsTruncated") == "true");
  CHECK(d.first("NextContinuationToken") == "t&k");
  CHECK(d.first("Missing").empty());
}

TEST_CASE("xml: entities, character references, CDATA, comments and spaces") {
  auto d = xml::parse("<E><A>&lt;&gt;&amp;&apos;&quot;</A><B>&#233;&#x1F600;</B><C><![CDATA[<raw> & ]]></C>"
                      "<D>a<!-- no -->b</D><S> </S><T>  two  </T></E>");
  REQUIRE(d);
  CHECK(d.first("A") == "<>&'\"");
  CHECK(d.first("B") == "\xC3\xA9\xF0\x9F\x98\x80");
  CHECK(d.first("C") == "<raw> & ");
  CHECK(d.first("D") == "ab");
  CHECK(d.first("S") == " ");  // a key made of a space is data
  CHECK(d.first("T") == "  two  ");
}

TEST_CASE("xml: a malformed reference is never a NUL byte") {
  // The old hand parser turned &#abc; into U+0000. Either the text stays as written or the document
  // is refused: never a NUL, never invalid UTF-8.
  for (const char* doc : {"<E><K>a&#abc;b</K></E>", "<E><K>a&#xZZ;b</K></E>", "<E><K>a&#;b</K></E>",
                          "<E><K>a&#x;b</K></E>"}) {
    CAPTURE(doc);
    const std::string k = xml::parse(doc).first("K");
    CHECK(k.find('\0') == std::string::npos);
    CHECK(era::ns::is_valid_utf8(k));
  }
  CHECK(xml::parse("<E><K>a&#abc;b</K></E>").first("K") != "a");
}

TEST_CASE("xml: references to U+0000 or a surrogate make the document unreadable, not invalid text") {
  for (const char* doc : {"<E><K>&#0;</K></E>", "<E><K>&#xD800;</K></E>", "<E><K>&#xDFFF;</K></E>",
                          "<E><K>&#55296;</K></E>", "<E><K>x&#xDC00;y</K></E>", "<E><K>&#x110000;</K></E>"}) {
    CAPTURE(doc);
    const auto d = xml::parse(doc);
    const std::string k = d.first("K");
    CHECK(k.find('\0') == std::string::npos);
    CHECK(era::ns::is_valid_utf8(k));
  }
  CHECK_FALSE(xml::parse("<E><K>&#xD800;</K></E>"));
  for (const char* nul : {"<E><K>&#0;</K></E>", "<E><K>a&#0;b</K></E>", "<E><K>a&#x0;b</K></E>", "<E><K>&#x0000;</K></E>",
                          "<E><K>&#000;</K></E>"})
    CHECK_FALSE(xml::parse(nul));  // never a silently cut "a"
  CHECK(xml::parse("<E><K>&#10;&#x30;</K></E>").first("K") == "\n0");
  CHECK(xml::parse("<E><K>&#xD7FF;&#xE000;&#x10FFFF;</K></E>").first("K") == "\xED\x9F\xBF\xEE\x80\x80\xF4\x8F\xBF\xBF");
}

TEST_CASE("xml: what is not a document reads as empty") {
  for (const char* doc : {"", "not xml", "{\"errors\":[]}", "<E><K>unclosed</E>", "<E>\xFF</E>", "<a></b>"}) {
    CAPTURE(doc);
    CHECK_FALSE(xml::parse(doc));
    CHECK(xml::parse(doc).first("K").empty());
    CHECK(xml::parse(doc).all("K").empty());
  }
}

TEST_CASE("xml: escape") {
  CHECK(xml::escape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&apos;");
  CHECK(xml::parse("<E>" + xml::escape("<&\"x'>") + "</E>").first("E") == "<&\"x'>");
}
