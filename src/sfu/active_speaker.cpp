#include "sfu/active_speaker.hpp"

#include <algorithm>

namespace kaiwa::sfu {

ActiveSpeaker::Speaker* ActiveSpeaker::find(SpeakerId id) {
  for (auto& s : speakers_)
    if (s.id == id) return &s;
  return nullptr;
}

const ActiveSpeaker::Speaker* ActiveSpeaker::find(SpeakerId id) const {
  for (const auto& s : speakers_)
    if (s.id == id) return &s;
  return nullptr;
}

void ActiveSpeaker::add(SpeakerId id) {
  if (find(id) != nullptr) return;
  Speaker s{.id = id};
  s.floor = config_.minSpeechLoudness;
  speakers_.push_back(s);
}

void ActiveSpeaker::remove(SpeakerId id) {
  std::erase_if(speakers_, [id](const Speaker& s) { return s.id == id; });
  if (dominant_ == id) dominant_.reset();
  if (challenger_ == id) challenger_.reset();
}

void ActiveSpeaker::onLevel(SpeakerId id, bool voiceActivity, uint8_t level) {
  Speaker* s = find(id);
  if (s == nullptr) return;
  const uint8_t loudness = uint8_t(127 - std::min<uint8_t>(level, 127));
  ++s->packets;
  s->quietest = std::min(s->quietest, loudness);
  s->floor = std::min(s->floor, double(loudness));
  s->hasVad = s->hasVad || voiceActivity;
  if (loudness < config_.minSpeechLoudness) return;
  const bool speech = s->hasVad ? voiceActivity : loudness >= s->floor + config_.aboveFloor;
  if (speech) ++s->speech;
}

std::optional<ActiveSpeaker::SpeakerId> ActiveSpeaker::tick(TimePoint now) {
  for (auto& s : speakers_) {
    const double a = s.packets == 0 ? 0.0 : double(s.speech) / double(s.packets);
    s.shortTerm += config_.shortAlpha * (a - s.shortTerm);
    s.longTerm += config_.longAlpha * (a - s.longTerm);
    if (s.packets != 0 && !s.floorLearned) {
      // The first interval with packets tells the speaker's own floor (a hissing microphone's hiss); a speaker who
      // talked all through it brings the floor down at the first pause.
      s.floor = s.quietest;
      s.floorLearned = true;
    } else if (s.packets != 0 && s.quietest > s.floor) {
      s.floor += config_.floorFollow * (s.quietest - s.floor);
    }
    s.packets = s.speech = 0;
    s.quietest = 127;
  }

  const Speaker* current = dominant_ ? find(*dominant_) : nullptr;
  // The strongest other speaker who is talking now.
  const Speaker* best = nullptr;
  for (const auto& s : speakers_) {
    if (&s == current || s.shortTerm < config_.talkingNow) continue;
    if (best == nullptr || s.longTerm > best->longTerm) best = &s;
  }

  if (current == nullptr) {
    // A silent room (or its dominant speaker left): the first clear talker is taken at once.
    challenger_.reset();
    if (best == nullptr || best->longTerm < config_.firstSpeaker) return std::nullopt;
    dominant_ = best->id;
    return dominant_;
  }
  if (best == nullptr || best->longTerm < current->longTerm + config_.margin) {
    challenger_.reset();
    return std::nullopt;
  }
  if (challenger_ != best->id) {
    challenger_ = best->id;
    challengerSince_ = now;
  }
  if (now - challengerSince_ < config_.hold) return std::nullopt;
  dominant_ = best->id;
  challenger_.reset();
  return dominant_;
}

std::optional<ActiveSpeaker::Activity> ActiveSpeaker::activity(SpeakerId id) const {
  const Speaker* s = find(id);
  if (s == nullptr) return std::nullopt;
  return Activity{s->shortTerm, s->longTerm, s->floor};
}

}  // namespace kaiwa::sfu
