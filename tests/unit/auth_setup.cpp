// Start-up policy and credential resolution (auth/setup.h, auth/credentials.h).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "auth/credentials.h"
#include "auth/setup.h"
#include "support.h"

using namespace era;
using namespace era::auth;

namespace {

std::string write_file(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path) << content;
  ::chmod(path.c_str(), mode);
  return path;
}

Config base(const std::string& dir) {
  Config c;
  c.data_dir = dir + "/data";
  return c;
}

}  // namespace

TEST_CASE("loopback hosts") {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"})
    CHECK(is_loopback_host(h));
  for (const char* h : {"0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "example.com", "128.0.0.1", ""})
    CHECK_FALSE(is_loopback_host(h));
}

TEST_CASE("auth off: allowed on loopback with a warning, refused elsewhere even with an admin") {
  const era::test::TempDir tmp("setup-off");
  const std::string dir = tmp.str();
  Config c = base(dir);
  std::string notes;
  AuthSettings s = auth_settings(c, notes);
  CHECK_FALSE(s.required);
  CHECK(notes.find("WARNING") != std::string::npos);
  c.host = "0.0.0.0";
  CHECK_THROWS_AS(auth_settings(c, notes), ConfigError);
  c.admin_token = "an-admin-credential-long-enough";
  CHECK_THROWS_AS(auth_settings(c, notes), ConfigError);
}

TEST_CASE("token mode on a public address needs an admin credential") {
  const era::test::TempDir tmp("setup-token");
  const std::string dir = tmp.str();
  Config c = base(dir);
  c.auth_mode = "token";
  c.host = "0.0.0.0";
  std::string notes;
  CHECK_THROWS_AS(auth_settings(c, notes), ConfigError);
  c.admin_token = "an-admin-credential-long-enough";
  AuthSettings s = auth_settings(c, notes);
  CHECK(s.required);
  CHECK(*s.admin_token == "an-admin-credential-long-enough");
  CHECK(notes.find("an-admin-credential") == std::string::npos);  // secrets are never in the notes
  c.admin_token = "short";
  CHECK_THROWS_AS(auth_settings(c, notes), ConfigError);
}

TEST_CASE("the generated secret is kept 0600 in the data dir and reused") {
  const era::test::TempDir tmp("setup-gen");
  const std::string dir = tmp.str();
  Config c = base(dir);
  Secret first = resolve_token_secret(c);
  CHECK(first.value.size() == 64);
  struct stat st {};
  REQUIRE(::stat((c.data_dir + "/token_secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(resolve_token_secret(c).value == first.value);
  // A secret someone made readable is refused, not silently used.
  ::chmod((c.data_dir + "/token_secret").c_str(), 0644);
  CHECK_THROWS_AS(resolve_token_secret(c), ConfigError);
}

TEST_CASE("credential files: mode checked, newline dropped, settings win over the data dir") {
  const era::test::TempDir tmp("setup-files");
  const std::string dir = tmp.str();
  Config c = base(dir);
  c.token_secret_file = write_file(dir + "/secret", std::string(40, 's') + "\n", 0600);
  CHECK(resolve_token_secret(c).value == std::string(40, 's'));
  ::chmod(c.token_secret_file.c_str(), 0640);
  CHECK_THROWS_AS(resolve_token_secret(c), ConfigError);
  ::chmod(c.token_secret_file.c_str(), 0604);
  CHECK_THROWS_AS(resolve_token_secret(c), ConfigError);
  c.token_secret_file = write_file(dir + "/short", "too-short", 0600);
  CHECK_THROWS_AS(resolve_token_secret(c), ConfigError);
  c.token_secret_file = dir + "/missing";
  CHECK_THROWS_AS(resolve_token_secret(c), ConfigError);
  c.token_secret_file.clear();
  c.token_secret = std::string(32, 'x');
  CHECK(resolve_token_secret(c).value == std::string(32, 'x'));
  CHECK_FALSE(std::filesystem::exists(c.data_dir + "/token_secret"));

  CHECK_FALSE(resolve_admin_token(c).has_value());
  c.admin_token_file = write_file(dir + "/admin", "admin-credential-from-file\r\n", 0600);
  CHECK(resolve_admin_token(c)->value == "admin-credential-from-file");
  ::chmod(c.admin_token_file.c_str(), 0644);
  CHECK_THROWS_AS(resolve_admin_token(c), ConfigError);
}
