// fuzz_http_request: the HTTP entry path as src/http/server.cpp runs it, minus the socket. The input goes through
// Beast's request_parser<string_body> (header limit 16 KiB, body limit 1 MiB, eager like http::async_read) in
// chunks whose sizes the first bytes choose, since a streaming parser must survive any split; pipelined requests are
// parsed one after another. Each parsed request is turned into an http::Request as the server does, and
// Request::queryParam, http::percentDecode and StaticFiles::resolve/serve are exercised on it.
//
// Input format: byte 0 = number of chunk sizes n (n % 8), then n bytes of chunk sizes (1-256 each, reused
// cyclically), then the bytes of the connection.
//
// Invariants: nothing crashes; the parser always makes progress or fails; percentDecode never yields a NUL byte and
// leaves '%'-free text as is; a resolved static path lies under the canonical root, also after following symlinks
// (the fixture root holds a symlink pointing out of it, and a file next to the root for ../ to find); a request for
// a resolved file gets the file's content, a 304 for its own ETag.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <unistd.h>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "http/beast_request.hpp"
#include "http/handler.hpp"
#include "http/static_files.hpp"

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace fs = std::filesystem;
using namespace kaiwa;

namespace {

constexpr std::uint32_t kHeaderLimit = 16 * 1024;
constexpr std::uint64_t kBodyLimit = 1024 * 1024;

struct Fixture {
  fs::path dir;   // temporary directory: dir/secret.txt, dir/root/...
  fs::path root;  // canonical root
  std::unique_ptr<http::StaticFiles> files;

  Fixture() {
    std::string tmpl = (fs::temp_directory_path() / "kaiwa-fuzz-http-XXXXXX").string();
    FUZZ_CHECK(mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
    dir = tmpl;
    auto write = [](const fs::path& p, std::string_view text) {
      std::ofstream out(p, std::ios::binary);
      out << text;
    };
    fs::create_directories(dir / "root" / "sub" / "deeper");
    write(dir / "secret.txt", "outside the root\n");
    write(dir / "root" / "index.html", "<!doctype html><title>kaiwa</title>\n");
    write(dir / "root" / "app.js", "console.log('kaiwa');\n");
    write(dir / "root" / "style.css", "body{}\n");
    write(dir / "root" / "sub" / "index.html", "<p>sub</p>\n");
    write(dir / "root" / "sub" / "a b.txt", "space\n");
    write(dir / "root" / "sub" / "deeper" / "x.json", "{}\n");
    std::error_code ec;
    fs::create_directory_symlink(dir, dir / "root" / "out", ec);              // a link out of the root
    fs::create_symlink(dir / "secret.txt", dir / "root" / "secret.txt", ec);  // a file link out of the root
    fs::create_symlink("index.html", dir / "root" / "home.html", ec);         // a link that stays inside
    root = fs::canonical(dir / "root");
    files = std::make_unique<http::StaticFiles>(dir / "root");
    FUZZ_CHECK(files->root() == root, files->root().string());
    FUZZ_CHECK(files->usable(), "fixture root unusable");
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

Fixture& fixture() {
  static Fixture f;  // destroyed at exit: the temporary directory goes with it
  return f;
}

bool under(const fs::path& root, const fs::path& p) {
  auto [r, q] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return r == root.end();
}

void checkPercentDecode(std::string_view s) {
  auto d = http::percentDecode(s);
  if (!d) return;
  FUZZ_CHECK(d->find('\0') == std::string::npos || s.find('\0') != std::string_view::npos, s);
  if (s.find('%') == std::string_view::npos) FUZZ_CHECK(*d == s, s);
  FUZZ_CHECK(d->size() <= s.size(), s);
}

void checkResolve(std::string_view urlPath) {
  Fixture& f = fixture();
  auto p = f.files->resolve(urlPath);
  if (!p) return;
  // NUL is refused, raw or encoded (a raw one used to cut the path short: "/index.html\0.js" gave index.html).
  FUZZ_CHECK(urlPath.find('\0') == std::string_view::npos, std::string(urlPath) + " -> " + p->string());
  std::string detail = std::string(urlPath) + " -> " + p->string();
  FUZZ_CHECK(under(f.root, *p), detail);
  std::error_code ec;
  fs::path real = fs::canonical(*p, ec);
  FUZZ_CHECK(!ec, detail);
  FUZZ_CHECK(under(f.root, real), detail + " (really " + real.string() + ")");
  FUZZ_CHECK(fs::is_regular_file(real, ec), detail);
}

void handle(const bhttp::request<bhttp::string_body>& req) {
  (void)beast::websocket::is_upgrade(req);
  (void)req.keep_alive();
  http::Request r = http::toRequest(req, 0);
  checkPercentDecode(r.path);
  checkPercentDecode(r.query);
  for (std::string_view key : {"room", "token", "name", "", "a b", "%"}) {
    if (auto v = r.queryParam(key)) FUZZ_CHECK(v->find('\0') == std::string::npos, r.query);
  }
  // The first key of the query, whatever it is.
  std::string_view q = r.query;
  auto first = q.substr(0, std::min(q.find('='), q.find('&')));
  (void)r.queryParam(first);

  checkResolve(r.path);
  Fixture& f = fixture();
  auto res = f.files->serve(r);
  if (res && res->status == 200) {
    std::string etag;
    for (auto& [k, v] : res->headers) {
      if (k == "ETag") etag = v;
    }
    FUZZ_CHECK(!etag.empty(), "no ETag");
    http::Request again = r;
    again.ifNoneMatch = etag;
    auto res2 = f.files->serve(again);
    FUZZ_CHECK(res2 && res2->status == 304 && res2->body.empty(), r.path);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::size_t nChunks = data[0] % 8;
  if (size < 1 + nChunks) return 0;
  std::vector<std::size_t> chunks;
  for (std::size_t i = 0; i < nChunks; ++i) chunks.push_back(std::size_t{data[1 + i]} + 1);
  if (chunks.empty()) chunks.push_back(SIZE_MAX);
  std::string_view in(reinterpret_cast<const char*>(data) + 1 + nChunks, size - 1 - nChunks);

  // The raw bytes as a URL path and query too: resolve() and percentDecode() take any string.
  checkPercentDecode(in);
  checkResolve(in);

  auto fresh = [] {
    auto p = std::make_unique<bhttp::request_parser<bhttp::string_body>>();
    p->header_limit(kHeaderLimit);
    p->body_limit(kBodyLimit);
    p->eager(true);
    return p;
  };
  auto parser = fresh();
  std::string buf;  // received, not yet consumed (as the server's flat_buffer)
  std::size_t pos = 0, chunk = 0;
  int requests = 0;
  bool failed = false;
  while (!failed && requests < 16) {
    if (pos < in.size()) {
      std::size_t n = std::min(chunks[chunk++ % chunks.size()], in.size() - pos);
      buf.append(in.substr(pos, n));
      pos += n;
    }
    const bool eof = pos >= in.size();
    // Feed what we have until the parser wants more or is done.
    for (;;) {
      beast::error_code ec;
      std::size_t used = buf.empty() ? 0 : parser->put(boost::asio::buffer(buf), ec);
      FUZZ_CHECK(used <= buf.size(), "parser consumed more than it was given");
      buf.erase(0, used);
      if (ec == bhttp::error::need_more) {
        if (!eof) break;
        ec = {};
        parser->put_eof(ec);
        if (ec) failed = true;
        break;
      }
      if (ec) {
        failed = true;  // the server answers 400/413/431 and closes
        break;
      }
      if (parser->is_done()) {
        handle(parser->get());
        ++requests;
        parser = fresh();  // keep-alive: the next request
        continue;
      }
      if (used == 0) {
        if (eof) {
          parser->put_eof(ec);
          if (!ec && parser->is_done()) {
            handle(parser->get());
            ++requests;
          }
          failed = true;
        }
        break;
      }
    }
    if (eof && !failed) break;
  }
  return 0;
}
