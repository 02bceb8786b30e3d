#pragma once
// A worker's objects by id (its TURN TCP/TLS connections, its RFC 6062 peer connections): an id is
// (generation << 32) | slot, and a slot's generation changes when its object goes. So an id that crossed an async hop
// (a completion handler, a timer, a posted task) finds nothing once its object is gone, even when the slot holds
// another object by then: the handler looks it up again and does nothing. The pattern of signal/hub.cpp's slots.
#include <cstdint>
#include <memory>
#include <vector>

namespace kaiwa::turn {

template <typename T>
class Slots {
 public:
  using Id = uint64_t;  // never 0; the top bit is free for the caller (generations stay below 2^31)

  Id insert(std::unique_ptr<T> value) {
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      index = uint32_t(slots_.size());
      slots_.emplace_back();
    }
    slots_[index].value = std::move(value);
    ++count_;
    return (Id(slots_[index].generation) << 32) | index;
  }

  T* get(Id id) const {
    uint32_t index = uint32_t(id);
    if (index >= slots_.size() || slots_[index].generation != uint32_t(id >> 32)) return nullptr;
    return slots_[index].value.get();
  }

  // Takes the object out (the caller decides when it is destroyed); its id is dead from now on.
  std::unique_ptr<T> erase(Id id) {
    if (!get(id)) return nullptr;
    uint32_t index = uint32_t(id);
    Slot& s = slots_[index];
    std::unique_ptr<T> out = std::move(s.value);
    if (++s.generation >= (1u << 31)) s.generation = 1;
    free_.push_back(index);
    --count_;
    return out;
  }

  size_t size() const { return count_; }

  // Calls f(id, object) for each object; f must not insert or erase.
  template <typename F>
  void forEach(F&& f) const {
    for (uint32_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].value) f((Id(slots_[i].generation) << 32) | i, *slots_[i].value);
  }

 private:
  struct Slot {
    std::unique_ptr<T> value;
    uint32_t generation = 1;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  size_t count_ = 0;
};

}  // namespace kaiwa::turn
