#include "http/static_files.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace kaiwa::http {
namespace {
namespace fs = std::filesystem;

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base = fs::temp_directory_path() / ("kaiwa-static-" + std::to_string(::getpid()));
    fs::create_directories(base / "web" / "assets");
    write(base / "web" / "index.html", "<!doctype html>hi");
    write(base / "web" / "assets" / "app.js", "console.log(1)");
    write(base / "web" / "assets" / "a b.css", "body{}");
    write(base / "secret.txt", "do not serve");
    fs::create_symlink(base / "secret.txt", base / "web" / "leak.txt");
    files.emplace(base / "web");
  }
  void TearDown() override { fs::remove_all(base); }
  static void write(const fs::path& p, std::string_view s) { std::ofstream(p) << s; }
  Request get(std::string path) {
    Request r;
    r.method = "GET";
    r.path = std::move(path);
    return r;
  }

  fs::path base;
  std::optional<StaticFiles> files;
};

TEST_F(StaticFilesTest, ServesFilesWithTypesAndCacheHeaders) {
  auto r = files->serve(get("/assets/app.js"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "console.log(1)");
  EXPECT_EQ(r->contentType, "text/javascript; charset=utf-8");
  auto idx = files->serve(get("/"));
  ASSERT_TRUE(idx);
  EXPECT_EQ(idx->contentType, "text/html; charset=utf-8");
  bool noCache = false;
  for (auto& [k, v] : idx->headers) noCache |= (k == "Cache-Control" && v == "no-cache");
  EXPECT_TRUE(noCache);
  EXPECT_TRUE(files->serve(get("/assets/a%20b.css")));
  EXPECT_TRUE(files->usable());
}

TEST_F(StaticFilesTest, EtagGivesNotModified) {
  auto r = files->serve(get("/assets/app.js"));
  ASSERT_TRUE(r);
  std::string etag;
  for (auto& [k, v] : r->headers) {
    if (k == "ETag") etag = v;
  }
  ASSERT_FALSE(etag.empty());
  Request again = get("/assets/app.js");
  again.ifNoneMatch = etag;
  auto r2 = files->serve(again);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 304u);
  EXPECT_TRUE(r2->body.empty());
}

TEST_F(StaticFilesTest, RefusesTraversalInEveryDisguise) {
  for (std::string p : {"/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
                        "/assets/..%2f..%2fsecret.txt", "/..\\secret.txt", "/leak.txt", "/%00index.html",
                        "/index.html%00", "relative", "", "/nope.js", "/%zz"}) {
    EXPECT_FALSE(files->serve(get(p))) << p;
  }  // A raw NUL must not cut the path short ("/index.html\0.js" is not index.html).
  EXPECT_FALSE(files->serve(get(std::string("/index.html\0.js", 15))));
}

TEST_F(StaticFilesTest, MimeTypes) {
  EXPECT_EQ(StaticFiles::mimeType(".css"), "text/css; charset=utf-8");
  EXPECT_EQ(StaticFiles::mimeType(".svg"), "image/svg+xml");
  EXPECT_EQ(StaticFiles::mimeType(".unknown"), "application/octet-stream");
}

TEST(Request, QueryParamsArePercentDecoded) {
  Request r;
  r.query = "name=%E5%B1%B1%E7%94%B0+%E5%A4%AA&room=a&empty=&bad=%zz";
  EXPECT_EQ(r.queryParam("name").value(), "山田 太");
  EXPECT_EQ(r.queryParam("room").value(), "a");
  EXPECT_EQ(r.queryParam("empty").value(), "");
  EXPECT_FALSE(r.queryParam("bad").has_value());
  EXPECT_FALSE(r.queryParam("missing").has_value());
}

}  // namespace
}  // namespace kaiwa::http
