#include "http/static_files.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace kaiwa::http {
namespace fs = std::filesystem;

StaticFiles::StaticFiles(fs::path root) {
  std::error_code ec;
  root_ = fs::weakly_canonical(root, ec);
  if (ec) root_ = std::move(root);
}

bool StaticFiles::usable() const {
  std::error_code ec;
  return fs::is_regular_file(root_ / "index.html", ec);
}

std::string_view StaticFiles::mimeType(std::string_view ext) {
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".webp") return "image/webp";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".wasm") return "application/wasm";
  if (ext == ".txt" || ext == ".ts") return "text/plain; charset=utf-8";
  if (ext == ".webmanifest") return "application/manifest+json";
  return "application/octet-stream";
}

std::optional<fs::path> StaticFiles::resolve(std::string_view urlPath) const {
  auto decoded = percentDecode(urlPath);
  if (!decoded || decoded->empty() || (*decoded)[0] != '/') return std::nullopt;
  if (decoded->find('\\') != std::string::npos || decoded->find('\0') != std::string::npos) return std::nullopt;
  fs::path rel;
  std::string_view rest = std::string_view(*decoded).substr(1);
  while (!rest.empty()) {
    auto slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") return std::nullopt;
    rel /= std::string(seg);
  }
  if (rel.empty()) rel = "index.html";
  std::error_code ec;
  fs::path full = fs::weakly_canonical(root_ / rel, ec);
  if (ec) return std::nullopt;
  // Symlinks could still point out of the root: compare the canonical paths.
  auto [r, f] = std::mismatch(root_.begin(), root_.end(), full.begin(), full.end());
  if (r != root_.end()) return std::nullopt;
  if (fs::is_directory(full, ec)) full /= "index.html";
  if (!fs::is_regular_file(full, ec)) return std::nullopt;
  return full;
}

std::optional<Response> StaticFiles::serve(const Request& req) {
  auto file = resolve(req.path);
  if (!file) return std::nullopt;
  return respond(*file, req);
}

std::optional<Response> StaticFiles::serveFile(const std::string& relative, const Request& req) {
  auto file = resolve("/" + relative);
  if (!file) return std::nullopt;
  return respond(*file, req);
}

std::optional<Response> StaticFiles::respond(const fs::path& file, const Request& req) {
  std::error_code ec;
  auto mtime = fs::last_write_time(file, ec);
  auto size = fs::file_size(file, ec);
  if (ec) return std::nullopt;
  std::shared_ptr<const Cached> entry;
  {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(file.string());
    if (it != cache_.end() && it->second->mtime == mtime && it->second->size == size) entry = it->second;
  }
  if (!entry) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    auto c = std::make_shared<Cached>();
    c->body = ss.str();
    c->mtime = mtime;
    c->size = size;
    c->etag = fmt::format("\"{:x}-{:x}\"", c->body.size(), static_cast<uint64_t>(mtime.time_since_epoch().count()));
    entry = c;
    std::lock_guard lock(mutex_);
    cache_[file.string()] = entry;
  }
  Response res;
  std::string ext = file.extension().string();
  res.contentType = std::string(mimeType(ext));
  res.headers.emplace_back("ETag", entry->etag);
  // HTML must be revalidated so a new build shows at once; assets may be kept briefly.
  res.headers.emplace_back("Cache-Control", ext == ".html" ? "no-cache" : "public, max-age=300");
  if (!req.ifNoneMatch.empty() && req.ifNoneMatch == entry->etag) {
    res.status = 304;
    return res;
  }
  res.body = entry->body;
  return res;
}

}  // namespace kaiwa::http
