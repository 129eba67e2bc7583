// HttpStream: a response body pulled on demand, for objects larger than memory. open() sends the
// request (GET, no body) and waits for the status line and headers, retrying an idempotent request
// like HttpClient::send does while no body byte has been seen; read() then pulls the body through a
// curl multi handle, a piece at a time, on the caller's thread. A break mid-body is an ApiError
// (upstream_stream_broken): bytes already handed out cannot be taken back, so it is never retried.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

#include "store/cloudflare/http_client.h"

namespace era::cf {

class HttpStream {
 public:
  // Performs `req` up to its headers. A non-2xx answer is returned with its (small) body read whole.
  static std::unique_ptr<HttpStream> open(HttpClient& client, HttpRequest req);
  ~HttpStream();
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;

  const HttpResponse& response() const { return resp_; }
  // Up to `cap` body bytes; 0 at the end. Throws ApiError if the transfer breaks.
  size_t read(char* buf, size_t cap);

 private:
  HttpStream(HttpClient& client, HttpRequest req);
  bool start();         // one attempt up to the headers; false: a transport failure before them
  bool pump();          // moves the transfer on; false once it is finished
  void finish_error();  // throws for a failed finished transfer
  static size_t on_header(char* data, size_t size, size_t n, void* self);
  static size_t on_body(char* data, size_t size, size_t n, void* self);

  struct MultiDeleter {
    void operator()(CURLM* m) const { curl_multi_cleanup(m); }
  };
  struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
  };

  HttpClient& client_;
  HttpRequest req_;
  HttpClient::Handle easy_;
  std::unique_ptr<CURLM, MultiDeleter> multi_;
  std::unique_ptr<curl_slist, SlistDeleter> headers_;
  HttpResponse resp_;
  bool headers_done_ = false;
  bool done_ = false;
  bool paused_ = false;
  CURLcode result_ = CURLE_OK;
  std::string pending_;
  size_t pending_off_ = 0;
};

}  // namespace era::cf
