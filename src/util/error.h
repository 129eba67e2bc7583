// The one error type that crosses layers. Stores and namespace rules throw it with the status
// and stable code the client should see; the server turns it into the JSON envelope
// {"success": false, "error": message, "code": code}.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace era {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& code() const { return code_; }

  // What the error means beyond status and code, for http/ to turn into response headers; stores and
  // the runner set these, never a header themselves:
  std::optional<int64_t> retry_after_s;        // try again after this many seconds (Retry-After)
  std::optional<uint64_t> unsatisfiable_size;  // a range did not fit an object of this size
                                               // (Content-Range: bytes */size on a 416)
  // An extra response header, for the HTTP-facing layers only (auth's WWW-Authenticate).
  std::pair<std::string, std::string> header;

  // The same error (status, code and every meaning above) with another message, for a layer that adds
  // context ("statement 3: ...") without losing what the error means.
  ApiError with_message(const std::string& message) const {
    ApiError e(status_, code_, message);
    e.retry_after_s = retry_after_s;
    e.unsatisfiable_size = unsatisfiable_size;
    e.header = header;
    return e;
  }

 private:
  int status_;
  std::string code_;
};

inline ApiError bad_request(const std::string& code, const std::string& msg) { return {400, code, msg}; }
inline ApiError not_found(const std::string& code, const std::string& msg) { return {404, code, msg}; }
inline ApiError too_large(const std::string& code, const std::string& msg) { return {413, code, msg}; }

}  // namespace era
