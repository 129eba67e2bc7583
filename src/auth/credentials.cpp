#include "auth/credentials.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/encoding.h"
#include "util/fd.h"

namespace era::auth {
namespace {

constexpr size_t kMinSecret = 32;
constexpr size_t kMinAdmin = 16;

using Fd = UniqueFd;  // the one fd owner (util/fd.h)

std::string errno_text() { return std::strerror(errno); }

void write_all(int fd, const std::string& data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ConfigError("cannot write " + path + ": " + errno_text());
    off += static_cast<size_t>(n);
  }
}

// Creates <dir>/token_secret atomically (temp file, fsync, link): a concurrent `serve` and `token`
// agree on one secret, and a crash never leaves a half-written one.
std::string generate_secret_file(const std::string& dir, const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ConfigError("cannot create data dir " + dir + ": " + ec.message());
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) throw ConfigError("cannot generate a token secret: no randomness");
  const std::string secret = enc::hex(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) throw ConfigError("cannot create " + tmp + ": " + errno_text());
    write_all(fd.get(), secret + "\n", tmp);
    if (::fsync(fd.get()) != 0) throw ConfigError("cannot sync " + tmp + ": " + errno_text());
  }
  const int linked = ::link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  ::unlink(tmp.c_str());
  if (linked != 0 && link_errno != EEXIST)
    throw ConfigError("cannot create " + path + ": " + std::strerror(link_errno));
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() >= 0) ::fsync(d.get());
  return read_credential_file(path);  // EEXIST: another process won the race; use its secret
}

}  // namespace

std::string read_credential_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) throw ConfigError("cannot open credential file " + path + ": " + errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw ConfigError("cannot stat " + path + ": " + errno_text());
  if (!S_ISREG(st.st_mode)) throw ConfigError("credential file " + path + " is not a regular file");
  if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw ConfigError("credential file " + path + " is readable or writable by others (mode " + mode +
                      "): refusing to use it; run `chmod 600 " + path + "`");
  }
  if (st.st_size > 64 * 1024) throw ConfigError("credential file " + path + " is too large to be a credential");
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ConfigError("cannot read " + path + ": " + errno_text());
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

Secret resolve_token_secret(const Config& c) {
  Secret s;
  if (!c.token_secret.empty()) {
    s = {c.token_secret, c.source.count("auth.token_secret") && c.source.at("auth.token_secret") == "env"
                             ? "ERA_TOKEN_SECRET"
                             : "auth.token_secret"};
  } else {
    std::string path = c.token_secret_file;
    if (path.empty()) {
      path = c.data_dir + "/token_secret";
      if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
        s = {generate_secret_file(c.data_dir, path), path + " (generated)"};
        return s;
      }
    }
    s = {read_credential_file(path), path};
  }
  if (s.value.size() < kMinSecret)
    throw ConfigError("the token secret from " + s.source + " is too short: at least " + std::to_string(kMinSecret) +
                      " bytes");
  return s;
}

namespace {

// A credential from its setting (named by `env` when the environment gave it) or its file; at least
// kMinAdmin bytes.
std::optional<Secret> resolve_credential(const Config& c, const std::string& value, const std::string& file,
                                         const std::string& key, const char* env, const char* what) {
  Secret s;
  if (!value.empty()) {
    s = {value, c.source.count(key) && c.source.at(key) == "env" ? env : key};
  } else if (!file.empty()) {
    s = {read_credential_file(file), file};
  } else {
    return std::nullopt;
  }
  if (s.value.size() < kMinAdmin)
    throw ConfigError(std::string("the ") + what + " from " + s.source + " is too short: at least " +
                      std::to_string(kMinAdmin) + " bytes");
  return s;
}

}  // namespace

std::optional<Secret> resolve_admin_token(const Config& c) {
  return resolve_credential(c, c.admin_token, c.admin_token_file, "auth.admin_token", "ERA_ADMIN_TOKEN",
                            "admin credential");
}

std::optional<Secret> resolve_metrics_token(const Config& c) {
  return resolve_credential(c, c.metrics_token, c.metrics_token_file, "metrics.token", "ERA_METRICS_TOKEN",
                            "metrics token");
}

}  // namespace era::auth
