#pragma once
// N worker threads, each running its own event loop (net::Loop over an io_context). Objects belong to one worker at a
// time; other threads reach them only by posting a task to that worker.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <cstdint>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "net/loop.hpp"

namespace kaiwa::net {

class WorkerPool {
 public:
  static constexpr uint32_t kNotAWorker = std::numeric_limits<uint32_t>::max();

  explicit WorkerPool(uint32_t workers);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  uint32_t size() const { return static_cast<uint32_t>(contexts_.size()); }
  boost::asio::io_context& context(uint32_t worker) { return *contexts_[worker]; }
  Loop& loop(uint32_t worker) { return *loops_[worker]; }

  template <typename F>
  void post(uint32_t worker, F&& task) {
    boost::asio::post(*contexts_[worker], std::forward<F>(task));
  }

  // The worker index of the calling thread, or kNotAWorker.
  static uint32_t current();

  // Starts one thread per worker; returns at once.
  void start();
  // Stops every event loop and joins the threads.
  void stop();
  // After stop(): destroys every operation and task still pending (their handlers, and what they hold) while the
  // objects they refer to are still alive. Sockets and timers may be destroyed after it; the contexts go with the pool.
  void shutdown();

 private:
  // An io_context whose services can be shut down before it is destroyed (Asio keeps that protected).
  class Context : public boost::asio::io_context {
   public:
    using boost::asio::io_context::io_context;
    void shutdownServices() { boost::asio::io_context::shutdown(); }
  };

  std::vector<std::unique_ptr<Context>> contexts_;
  std::vector<std::unique_ptr<Loop>> loops_;  // (destroyed before the contexts they run on)
  std::vector<std::thread> threads_;
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<Guard> guards_;
};

}  // namespace kaiwa::net
