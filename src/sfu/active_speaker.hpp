#pragma once
// Who is talking in a room, from the audio levels publishers put in their RTP (RFC 6464 ssrc-audio-level), without
// decoding any audio. Sans-I/O: levels and `now` in, a change of dominant speaker out of tick().
//
// Each speaker's packets are judged one by one. A sender that has ever set the extension's voice-activity flag runs a
// voice activity detector (Chromium does): its flag decides, for packets above an absolute minimum loudness. For the
// others, a packet is speech when it is well above that speaker's own noise floor (so a noisy microphone is not a
// talker) and above the minimum. The floor is the quietest packet of the speaker's first interval, then drops at
// once to any quieter packet and follows a noisier room up slowly. Every `interval` (one tick) the share of speech
// packets becomes that speaker's activity, smoothed on two time scales: a short one (is the speaker talking right now)
// and a long one (how much the speaker has been talking lately).
//
// The dominant speaker changes only on clearer speech, with hysteresis: a challenger takes over when it is talking now
// (short-term activity at least `talkingNow`) and its long-term activity leads the dominant speaker's by `margin`,
// continuously for `hold`. With the defaults a speaker who starts talking when the dominant one stops takes over about
// a second later; a cough, a "yes" or two people talking at once change nothing. The first speaker to talk in a
// silent room is taken at once. Silence keeps the last dominant speaker.
//
// Cost: onLevel is a short search in a small array and a few comparisons (no allocation); tick is linear in the
// number of speakers. A room has few publishers (they are bounded), so a linear search beats a hash map here.
#include <cstdint>
#include <optional>
#include <vector>

#include "common/clock.hpp"

namespace kaiwa::sfu {

class ActiveSpeaker {
 public:
  // The caller's name for a speaker (e.g. its transport or its room member number).
  using SpeakerId = uint32_t;

  struct Config {
    Millis interval{100};  // how often tick() should be called, and what one activity sample covers
    // Loudness is 127 - level (RFC 6464 gives the level in -dBov: 0 loudest, 127 silence), so 0 is silence.
    uint8_t minSpeechLoudness = 40;  // below this (quieter than -87 dBov) nothing is speech
    uint8_t aboveFloor = 15;         // dB above the speaker's noise floor that a packet must be to count as speech
    double floorFollow = 0.02;       // the share of the gap to this tick's quietest packet the floor rises by
    double shortAlpha = 0.5;         // the short-term smoothing (about 200 ms at 100 ms ticks)
    double longAlpha = 0.15;         // the long-term smoothing (about 600 ms)
    double talkingNow = 0.5;         // short-term activity a challenger needs
    double firstSpeaker = 0.3;       // long-term activity that makes the first dominant speaker of a silent room
    double margin = 0.15;            // the lead in long-term activity a challenger needs
    Millis hold{500};                // how long that lead must last
  };

  ActiveSpeaker() : ActiveSpeaker(Config{}) {}
  explicit ActiveSpeaker(Config config) : config_(config) {}

  // A speaker joins (a publisher's audio track); no-op if it is there already.
  void add(SpeakerId id);
  // A speaker goes. If it was dominant, nobody is until someone talks (tick() then reports the new one).
  void remove(SpeakerId id);
  // One RTP packet's audio level (RFC 6464), from a speaker added before; unknown speakers are ignored.
  void onLevel(SpeakerId id, bool voiceActivity, uint8_t level);
  // Once per interval: turns the packets seen since the last tick into activity and decides. Returns the new
  // dominant speaker when it changed in this tick; nullopt when it did not.
  std::optional<SpeakerId> tick(TimePoint now);

  std::optional<SpeakerId> dominant() const { return dominant_; }
  size_t size() const { return speakers_.size(); }

  // A speaker's smoothed activity in [0, 1] (for tests and metrics); nullopt for an unknown speaker.
  struct Activity {
    double shortTerm;
    double longTerm;
    double noiseFloor;  // loudness, 0..127
  };
  std::optional<Activity> activity(SpeakerId id) const;

 private:
  struct Speaker {
    SpeakerId id;
    // This interval's packets.
    uint32_t packets = 0;
    uint32_t speech = 0;
    uint8_t quietest = 127;  // the lowest loudness seen in this interval
    // Smoothed.
    double shortTerm = 0;
    double longTerm = 0;
    double floor = 0;           // noise floor (loudness), set to minSpeechLoudness when added
    bool floorLearned = false;  // the floor has been set from a first interval of packets
    bool hasVad = false;        // has set the voice-activity flag at least once
  };
  Speaker* find(SpeakerId id);
  const Speaker* find(SpeakerId id) const;

  Config config_;
  std::vector<Speaker> speakers_;
  std::optional<SpeakerId> dominant_;
  std::optional<SpeakerId> challenger_;
  TimePoint challengerSince_{};
};

}  // namespace kaiwa::sfu
