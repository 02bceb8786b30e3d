#include "record/file_sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kaiwa::record {

FileSink::FileSink(const std::string& path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) error_ = std::string("cannot create ") + path + ": " + std::strerror(errno);
  buffer_.reserve(kBufferSize);
}

FileSink::~FileSink() { close(); }

bool FileSink::fail(const char* what) {
  if (error_.empty()) error_ = std::string(what) + ": " + std::strerror(errno);
  return false;
}

bool FileSink::writeAll(std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write");
    done += static_cast<size_t>(n);
  }
  written_ += bytes.size();
  return true;
}

bool FileSink::flush() {
  if (!writeAll(buffer_)) return false;
  buffer_.clear();
  return true;
}

bool FileSink::append(std::span<const uint8_t> bytes) {
  if (!ok()) return false;
  if (buffer_.size() + bytes.size() > kBufferSize && !flush()) return false;
  if (bytes.size() >= kBufferSize) return writeAll(bytes);  // a frame larger than the buffer goes straight in
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  return true;
}

bool FileSink::patch(uint64_t offset, std::span<const uint8_t> bytes) {
  if (!ok() || offset > size() || bytes.size() > size() - offset) return false;
  while (!bytes.empty() && offset < written_) {  // the part already in the file
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), written_ - offset));
    const ssize_t w = ::pwrite(fd_, bytes.data(), n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return fail("pwrite");
    offset += static_cast<uint64_t>(w);
    bytes = bytes.subspan(static_cast<size_t>(w));
  }
  if (!bytes.empty()) std::memcpy(buffer_.data() + (offset - written_), bytes.data(), bytes.size());
  return true;
}

bool FileSink::close() {
  if (fd_ < 0) return error_.empty();
  const bool flushed = error_.empty() && flush();
  if (::close(fd_) != 0 && flushed) fail("close");
  fd_ = -1;
  return flushed && error_.empty();
}

}  // namespace kaiwa::record
