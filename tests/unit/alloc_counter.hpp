#pragma once
// Counts operator new while `counting` is set, for the no-allocation tests of hot paths. It replaces the global
// operator new/delete: include it from exactly one translation unit of a test binary of its own.
#include <atomic>
#include <cstdlib>
#include <new>

// The replacement operator new/delete below are a malloc/free pair; GCC cannot see that through inlining.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
