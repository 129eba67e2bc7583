// era-storage-proxy: the command line.
//   serve    run the proxy
//   check    verify the configuration against the backend's real resources
//   token    mint a session token offline, from the same secret serve uses
//   reindex  rebuild the resource registry's counters from the stores
//   version  print the version
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <pthread.h>
#include <thread>

#include <cxxopts.hpp>

#include "api/api.h"
#include "auth/credentials.h"
#include "auth/setup.h"
#include "auth/token.h"
#include "config/config.h"
#include "http/server.h"
#include "api/embedded_files.h"
#include "obs/audit.h"
#include "obs/http_observer.h"
#include "obs/metrics.h"
#include "runner/runner.h"
#include "ns/names.h"
#include "app/backends.h"
#include "util/log.h"
#include "util/time.h"

namespace {

using era::Config;
using era::ConfigError;

void usage() {
  std::cout << "usage: era-storage-proxy <command> [options]\n\n"
               "commands:\n"
               "  serve     run the storage proxy (see `era-storage-proxy serve --help`)\n"
               "  check     verify the configuration against the backend (token, namespace, database, bucket)\n"
               "  reindex   rebuild the resource registry's counters from the stores; report drift\n"
               "  token     mint a session token offline (see `era-storage-proxy token --help`)\n"
               "  version   print the version\n";
}

// Adds one flag per setting that has one, so the CLI cannot drift from the settings table.
void add_setting_flags(cxxopts::Options& options) {
  options.add_options()("c,config", "TOML configuration file (also ERA_PROXY_CONFIG)", cxxopts::value<std::string>());
  for (const auto& s : era::settings())
    if (!s.flag.empty())
      options.add_options()(s.flag, s.help + " [" + s.key + (s.env.empty() ? "" : ", " + s.env) + "]",
                            cxxopts::value<std::string>());
  options.add_options()("h,help", "show this help");
}

Config config_from(const cxxopts::ParseResult& r) {
  era::FlagValues flags;
  for (const auto& s : era::settings())
    if (!s.flag.empty() && r.count(s.flag)) flags[s.flag] = r[s.flag].as<std::string>();
  return era::load_config(r.count("config") ? r["config"].as<std::string>() : "", flags,
                          [](const char* name) { return std::getenv(name); });
}

// The data dir is created 0700; one that exists with access for group or others (made by hand, or
// by an older version) is narrowed to the owner when it is ours, and warned about when it is not.
void prepare_data_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return;  // the backend reports it, with context
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !(st.st_mode & 077)) return;
  if (st.st_uid == ::geteuid() && ::chmod(dir.c_str(), st.st_mode & 07700) == 0)
    era::log::info("data dir " + dir + " was open to other users: narrowed to mode 0700");
  else {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 0777));
    era::log::warn("data dir " + dir + " is open to other users (mode " + mode +
                   "): make it 0700 and owned by the proxy's user");
  }
}

int serve(int argc, char** argv) {
  cxxopts::Options options("era-storage-proxy serve", "Run the storage proxy.");
  add_setting_flags(options);
  auto r = options.parse(argc, argv);
  if (r.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  Config config = config_from(r);
  era::log::Level level;
  era::log::parse_level(config.log_level, level);
  era::log::set_level(level);
  era::log::Format log_format;
  era::log::parse_format(config.log_format, log_format);
  era::log::set_format(log_format);

  // Signals are taken by one thread with sigwait(); every other thread (created below) inherits the
  // blocked mask, so SIGINT/SIGTERM never interrupt a request in the middle.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  prepare_data_dir(config.data_dir);
  // Auth policy first: a refused configuration exits before anything is opened or bound.
  std::string notes;
  era::auth::AuthSettings auth_settings = era::auth::auth_settings(config, notes);
  auto backend = era::open_backend(config);
  era::auth::Authenticator authenticator(std::move(auth_settings), backend->sessions(), era::unix_now);
  era::auth::RateLimiter limiter(era::auth::rate_limits(config), [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  });
  authenticator.start([&limiter] { limiter.forget_idle(); });
  for (size_t i = 0, j; i < notes.size(); i = j + 1) {
    j = notes.find('\n', i);
    std::string line = notes.substr(i, j - i);
    if (line.rfind("WARNING: ", 0) == 0) era::log::warn(line.substr(9));
    else era::log::info(line);
  }
  era::api::Services services{config, *backend, authenticator, limiter.enabled() ? &limiter : nullptr};
  std::unique_ptr<era::runner::Runner> runner;
  if (config.runner_enabled) {
    // The same embedded SDK files GET /api/sdk serves.
    auto sdk = [](std::string_view name) {
      if (const auto* f = era::api::find_file(era::api::sdk_files(), name)) return std::string(f->bytes);
      throw std::runtime_error("SDK file " + std::string(name) + " is not embedded");
    };
    auto run_options = era::runner::options_from(config, sdk("era_storage.py"), sdk("era_storage.js"));
    era::SessionStore& sessions = backend->sessions();
    run_options.is_live = [&sessions](const std::string& id) { return sessions.get(id, era::unix_now()).has_value(); };
    runner = std::make_unique<era::runner::Runner>(std::move(run_options));
    services.runner = runner.get();
  }
  std::unique_ptr<era::obs::AuditLog> audit;
  if (!config.audit_file.empty()) {
    audit = std::make_unique<era::obs::AuditLog>(era::obs::AuditOptions{
        config.audit_file, config.audit_max_bytes, config.audit_keep, static_cast<size_t>(config.audit_queue), nullptr});
    services.audit = audit.get();
  }
  era::obs::HttpObserver observer(era::obs::metrics(), audit.get());
  era::http::Server server(config);
  server.router().observe(&observer);
  era::api::register_all(server.router(), services);
  const int port = server.bind();
  if (runner) {
    // The sandbox's one way out: the proxy on a Unix socket bound into it (runner/sandbox.h).
    server.listen_unix(runner->options().socket_path);
    era::log::info("sandboxed runs reach the proxy on the Unix socket " + runner->options().socket_path +
                   (runner->options().run_as ? " and run as uid " + std::to_string(runner->options().run_as->first) : "") +
                   (runner->cgroup_version().empty() ? "" : ", each in a cgroup (" + runner->cgroup_version() + ")"));
  }

  {
    // Background work (the cloudflare registry's flusher) starts once the port is ours; the instance
    // name stays the same across restarts on this host, so a restart finds what a crash left.
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
    backend->start(std::string(host) + ":" + std::to_string(port));
  }

  // The signal thread is joined before the server goes: its stop() touches the loop's internals
  // (a post wakes the loop), which must not race with their destruction. When the server stopped for
  // another reason, `leaving` and a SIGTERM of our own end its wait.
  std::atomic<bool> leaving{false};
  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    if (leaving.load()) return;
    if (sig == SIGINT || sig == SIGTERM) {
      era::log::info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                     ": finishing in-flight requests");
      server.stop();
    }
  });

  const std::string where = config.backend == "cloudflare" ? "api base " + config.cf_api_base : "data dir " + config.data_dir;
  std::printf("era-storage-proxy listening on http://%s:%d (backend %s, %s)\n", config.host.c_str(), port,
              config.backend.c_str(), where.c_str());
  std::fflush(stdout);
  server.run();
  leaving.store(true);
  pthread_kill(signals.native_handle(), SIGTERM);  // no effect once the thread has returned
  signals.join();
  authenticator.stop();
  backend->close();
  era::log::info("stopped cleanly");
  return 0;
}

int reindex(int argc, char** argv) {
  cxxopts::Options options("era-storage-proxy reindex",
                           "Rebuild the resource registry's counters from the stores and report any drift.");
  add_setting_flags(options);
  auto r = options.parse(argc, argv);
  if (r.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  Config config = config_from(r);
  era::log::set_level(era::log::Level::warn);
  auto backend = era::open_backend(config);
  auto report = backend->registry().reindex();
  backend->close();
  for (const auto& line : report.repairs) std::cout << "repaired " << line << "\n";
  std::cout << "reindex: " << report.repairs.size() << " counter(s) repaired" << std::endl;
  return 0;
}

// Mints a token from the signing secret, found exactly as `serve` finds it (same config file,
// environment and flags; the generated <data_dir>/token_secret otherwise). Prints only the token, so
// `ERA_STORAGE_TOKEN=$(era-storage-proxy token ...)` works; --json prints what POST /api/sessions does.
int token(int argc, char** argv) {
  cxxopts::Options options("era-storage-proxy token", "Mint a session token offline.");
  options.add_options()("session", "session id (1 to 128 of A-Z a-z 0-9 _ . -)", cxxopts::value<std::string>())(
      "namespaces", "comma-separated namespaces, or *", cxxopts::value<std::string>())(
      "permissions", "read or read_write", cxxopts::value<std::string>()->default_value("read_write"))(
      "ttl", "seconds the token is valid (default auth.default_ttl, at most auth.max_ttl)",
      cxxopts::value<std::string>())("json", "print a JSON object with the token and its claims");
  add_setting_flags(options);
  auto r = options.parse(argc, argv);
  if (r.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  Config config = config_from(r);
  if (!r.count("session") || !r.count("namespaces"))
    throw ConfigError("token needs --session ID and --namespaces a,b (or '*')");
  era::auth::Claims claims;
  claims.session_id = r["session"].as<std::string>();
  if (!era::auth::is_valid_session_id(claims.session_id))
    throw ConfigError("invalid --session: a session id is 1 to 128 of A-Z a-z 0-9 _ . -");
  const std::string list = r["namespaces"].as<std::string>();
  if (list == "*") {
    claims.scope.all = true;
  } else {
    for (size_t i = 0, j; i <= list.size(); i = j + 1) {
      j = list.find(',', i);
      if (j == std::string::npos) j = list.size();
      const std::string ns = list.substr(i, j - i);
      if (!era::ns::is_valid_namespace(ns))
        throw ConfigError("invalid namespace '" + ns + "' in --namespaces: 1 to 64 of A-Z a-z 0-9 _ -");
      claims.scope.namespaces.insert(ns);
    }
  }
  if (!era::auth::parse_permissions(r["permissions"].as<std::string>(), claims.permissions))
    throw ConfigError("invalid --permissions: read or read_write");
  long long ttl = config.default_ttl;
  if (r.count("ttl")) {
    const std::string t = r["ttl"].as<std::string>();
    char* end = nullptr;
    ttl = std::strtoll(t.c_str(), &end, 10);
    if (t.empty() || *end || ttl < 1 || ttl > config.max_ttl)
      throw ConfigError("invalid --ttl: seconds from 1 to auth.max_ttl (" + std::to_string(config.max_ttl) + ")");
  }
  claims.expires_at = era::unix_now() + ttl;
  // An offline token has no session record, so its scope must travel in it (auth/token.h).
  if (!era::auth::scope_fits_in_token(claims.scope))
    throw ConfigError("these namespaces are too many to carry in a token (at most " +
                      std::to_string(era::auth::kMaxInlineScopeBytes) +
                      " bytes as a JSON list): create the session with POST /api/sessions instead, whose "
                      "token refers to its stored scope");
  const std::string tok = era::auth::sign_token(claims, era::auth::resolve_token_secret(config).value);
  if (r.count("json")) {
    nlohmann::json out = {{"session_id", claims.session_id},
                          {"token", tok},
                          {"expires_at", claims.expires_at},
                          {"namespaces", claims.scope.all ? nlohmann::json("*") : nlohmann::json(claims.scope.namespaces)},
                          {"permissions", era::auth::to_string(claims.permissions)}};
    std::cout << out.dump() << std::endl;
  } else {
    std::cout << tok << std::endl;
  }
  return 0;
}

// Loads the configuration, opens the backend and checks each resource it uses; one line per check.
// Exit 0 when all pass, 1 when one fails, 2 for a configuration error. Never prints a secret.
int check(int argc, char** argv) {
  cxxopts::Options options("era-storage-proxy check", "Verify the configuration against the backend.");
  add_setting_flags(options);
  auto r = options.parse(argc, argv);
  if (r.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  Config config = config_from(r);
  era::log::set_level(era::log::Level::error);  // retries are summed up in the verdict, not logged
  std::cout << "backend: " << config.backend << std::endl;
  auto backend = era::open_backend(config);
  int failed = 0;
  for (const auto& item : backend->check()) {
    const bool plain = item.detail.empty() || item.detail == "ok";
    std::cout << (item.ok ? "ok    " : "FAIL  ") << item.what
              << (item.ok ? (plain ? "" : " (" + item.detail + ")") : ": " + item.detail) << std::endl;
    failed += !item.ok;
  }
  backend->close();
  std::cout << (failed ? std::to_string(failed) + " check(s) failed" : std::string("all checks passed")) << std::endl;
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Everything the proxy creates — databases, objects, secrets, sessions' working directories — is
  // its own alone: tenants' data must not be readable by other local users (the sandbox's uid
  // among them). Explicit modes where files are created say the same; this catches the rest.
  ::umask(077);
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string command = argv[1];
  try {
    if (command == "serve") return serve(argc - 1, argv + 1);
    if (command == "check") return check(argc - 1, argv + 1);
    if (command == "reindex") return reindex(argc - 1, argv + 1);
    if (command == "token") return token(argc - 1, argv + 1);
    if (command == "version" || command == "--version") {
      std::cout << "era-storage-proxy " << ERA_VERSION << std::endl;
      return 0;
    }
    if (command == "help" || command == "--help" || command == "-h") {
      usage();
      return 0;
    }
    std::cerr << "era-storage-proxy: unknown command '" << command << "'\n";
    usage();
    return 2;
  } catch (const ConfigError& e) {
    std::cerr << "era-storage-proxy: configuration error: " << e.what() << std::endl;
    return 2;
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << "era-storage-proxy: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "era-storage-proxy: " << e.what() << std::endl;
    return 1;
  }
}
