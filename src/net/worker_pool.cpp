#include "net/worker_pool.hpp"

#include <spdlog/spdlog.h>

namespace kaiwa::net {
namespace {
thread_local uint32_t tCurrentWorker = WorkerPool::kNotAWorker;
}

WorkerPool::WorkerPool(uint32_t workers) {
  if (workers == 0) workers = 1;
  for (uint32_t i = 0; i < workers; ++i) {
    contexts_.push_back(std::make_unique<Context>(1));
    guards_.emplace_back(contexts_.back()->get_executor());
  }
}

WorkerPool::~WorkerPool() { stop(); }

uint32_t WorkerPool::current() { return tCurrentWorker; }

void WorkerPool::start() {
  for (uint32_t i = 0; i < contexts_.size(); ++i) {
    threads_.emplace_back([this, i] {
      tCurrentWorker = i;
      for (;;) {
        try {
          contexts_[i]->run();
          break;
        } catch (const std::exception& e) {
          // A handler threw: log it and keep the worker alive; its other connections are unaffected.
          spdlog::error("worker {}: unhandled exception: {}", i, e.what());
        }
      }
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
