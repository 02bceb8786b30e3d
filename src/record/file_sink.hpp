#pragma once
// A Sink onto a file: appends go through a 64 KiB buffer (one write(2) per 64 KiB: every ~0.2 s of 2.5 Mbit/s video),
// patches land in the buffer or, for bytes already written, with pwrite(2). The file is created, never overwritten.
// It runs on the recording worker's thread: a write to the page cache takes microseconds; a disk that falls behind
// shows as a write that fails or blocks, which is why recording is off unless --record-dir is given.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "record/webm_writer.hpp"

namespace kaiwa::record {

class FileSink final : public Sink {
 public:
  static constexpr size_t kBufferSize = 64 * 1024;

  // Creates `path` (0644; fails if it exists). Check ok() before use; error() says why not.
  explicit FileSink(const std::string& path);
  ~FileSink() override;
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  bool ok() const { return fd_ >= 0 && error_.empty(); }
  const std::string& error() const { return error_; }

  bool append(std::span<const uint8_t> bytes) override;
  bool patch(uint64_t offset, std::span<const uint8_t> bytes) override;
  uint64_t size() const override { return written_ + buffer_.size(); }
  // Writes what is buffered and closes the file; false (and error()) if anything failed.
  bool close();

 private:
  bool flush();
  bool writeAll(std::span<const uint8_t> bytes);
  bool fail(const char* what);

  int fd_ = -1;
  uint64_t written_ = 0;  // bytes already in the file
  std::vector<uint8_t> buffer_;
  std::string error_;
};

}  // namespace kaiwa::record
