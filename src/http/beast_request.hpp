#pragma once
// Beast's parsed request → kaiwa's http::Request. Shared by the server and the HTTP fuzz target, so that the fuzzer
// exercises the same conversion the server runs.
#include <boost/beast/http.hpp>

#include "http/handler.hpp"

namespace kaiwa::http {

inline Request toRequest(const boost::beast::http::request<boost::beast::http::string_body>& req, uint32_t worker) {
  namespace bhttp = boost::beast::http;
  Request r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  auto q = r.target.find('?');
  r.path = r.target.substr(0, q);
  if (q != std::string::npos) r.query = r.target.substr(q + 1);
  r.origin = std::string(req[bhttp::field::origin]);
  r.ifNoneMatch = std::string(req[bhttp::field::if_none_match]);
  r.host = std::string(req[bhttp::field::host]);
  r.authorization = std::string(req[bhttp::field::authorization]);
  r.contentType = std::string(req[bhttp::field::content_type]);
  r.ifMatch = std::string(req[bhttp::field::if_match]);
  r.body = req.body();
  r.worker = worker;
  return r;
}

}  // namespace kaiwa::http
