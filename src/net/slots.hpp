#pragma once
// What a worker owns, in slots (docs/architecture.md, "Ownership"): each item is held by its worker's table and named
// by an id, (generation << 32) | slot. Whatever crosses an asynchronous hop or a worker — a posted task, a completion
// handler, a timer — carries the id, not a pointer, and looks the item up again when it runs: an item that ended
// meanwhile is simply not found, and its slot's next item has another generation. Touched only on its worker.
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace kaiwa::net {

using SlotId = uint64_t;  // 0 is none

template <typename T>
class Slots {
 public:
  SlotId insert(std::unique_ptr<T> item) {
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      index = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    slots_[index].item = std::move(item);
    ++size_;
    return (uint64_t(slots_[index].generation) << 32) | index;
  }

  T* find(SlotId id) const {
    const Slot* s = slotOf(id);
    return s ? s->item.get() : nullptr;
  }

  // Gives the item up (to another worker's table, say); its id is dead from now on.
  std::unique_ptr<T> take(SlotId id) {
    Slot* s = slotOf(id);
    if (!s) return nullptr;
    std::unique_ptr<T> item = std::move(s->item);
    ++s->generation;
    free_.push_back(static_cast<uint32_t>(id));
    --size_;
    return item;
  }

  // Destroys the item. The slot is freed before the destructor runs, so a destructor that looks its id up finds
  // nothing.
  void erase(SlotId id) { take(id).reset(); }

  // Calls fn(id, item) for every item. Items that fn (or what it calls) erases meanwhile are skipped; one it adds may
  // or may not be visited (it can take a free slot ahead).
  template <typename Fn>
  void forEach(Fn&& fn) {
    std::size_t n = slots_.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (!slots_[i].item) continue;
      SlotId id = (uint64_t(slots_[i].generation) << 32) | i;
      fn(id, *slots_[i].item);
    }
  }

  // Destroys every item (at exit, once the worker has stopped).
  void clear() {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].item) erase((uint64_t(slots_[i].generation) << 32) | i);
    }
  }

  std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::unique_ptr<T> item;
    uint32_t generation = 1;
  };
  const Slot* slotOf(SlotId id) const {
    auto index = static_cast<uint32_t>(id);
    if (index >= slots_.size() || slots_[index].generation != uint32_t(id >> 32) || !slots_[index].item) return nullptr;
    return &slots_[index];
  }
  Slot* slotOf(SlotId id) { return const_cast<Slot*>(std::as_const(*this).slotOf(id)); }

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  std::size_t size_ = 0;
};

}  // namespace kaiwa::net
