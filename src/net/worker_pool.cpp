#include "net/worker_pool.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "common/metrics.hpp"

namespace kaiwa::net {
WorkerPool::WorkerPool(uint32_t workers) {
  if (workers == 0) workers = 1;
  for (uint32_t i = 0; i < workers; ++i) {
    contexts_.push_back(std::make_unique<Context>(1));
    guards_.emplace_back(contexts_.back()->get_executor());
    loops_.push_back(std::make_unique<Loop>(*contexts_.back(), i));
  }
}

WorkerPool::~WorkerPool() { stop(); }

uint32_t WorkerPool::current() {
  Loop* loop = Loop::current();
  return loop ? loop->worker() : kNotAWorker;
}

void WorkerPool::start() {
  for (uint32_t i = 0; i < contexts_.size(); ++i) {
    threads_.emplace_back([this, i] {
      Loop::setCurrent(loops_[i].get());
      for (;;) {
        try {
          contexts_[i]->run();
          break;
        } catch (const std::exception& e) {
          // An Asio handler threw (the loop's own watchers and timers catch theirs): counted and logged, and the
          // worker goes on; debug builds stop here, since no handler may throw.
          metrics::add(metrics::registry().handlerFailures);
          spdlog::error("worker {}: unhandled exception: {}", i, e.what());
#ifndef NDEBUG
          std::abort();
#endif
        }
      }
      Loop::setCurrent(nullptr);
    });
  }
}

void WorkerPool::stop() {
  guards_.clear();
  for (auto& c : contexts_) c->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::shutdown() {
  stop();
  for (auto& c : contexts_) c->shutdownServices();
}

}  // namespace kaiwa::net
