#pragma once
// The built web app, served from a directory: MIME types, ETag/If-None-Match, cache headers, no path traversal.
// Files are read into memory at first request and re-read when their size or mtime changes.
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "http/handler.hpp"

namespace kaiwa::http {

class StaticFiles {
 public:
  explicit StaticFiles(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  bool usable() const;  // the root exists and holds index.html

  // GET of a file under the root; nullopt if there is none (or the path tries to leave the root).
  std::optional<Response> serve(const Request& req);
  // The same, for a file named relative to the root (e.g. "index.html" for app routes).
  std::optional<Response> serveFile(const std::string& relative, const Request& req);

  static std::string_view mimeType(std::string_view extension);

  // The path under the root that `urlPath` names, or nullopt for anything suspicious: bad escapes, NUL, "..",
  // backslashes, or a result outside the root after resolving symlinks.
  std::optional<std::filesystem::path> resolve(std::string_view urlPath) const;

 private:
  struct Cached {
    std::string body;
    std::string etag;
    std::filesystem::file_time_type mtime;
    uintmax_t size = 0;
  };
  std::optional<Response> respond(const std::filesystem::path& file, const Request& req);

  std::filesystem::path root_;
  std::mutex mutex_;  // the cache is shared by the workers; held only for a map lookup or insert
  std::unordered_map<std::string, std::shared_ptr<const Cached>> cache_;
};

}  // namespace kaiwa::http
