// fuzz_sdp: the SDP parser, writer and the SFU's answers (sdp/).
//  1. parse() on the raw input never crashes; it takes the input or returns an Error with a reason.
//  2. A parsed description writes and parses back to an equal one, and writing that again gives the same text.
//  3. answer() to it, as a publisher's and as a viewer's server, never crashes; an answer writes and parses back
//     equal. The same for the subscriber offer built from its RTP m-lines (their mids, codecs and extmaps).
//  4. parseIceFragment() (a WHIP PATCH body) on the raw input never crashes; a fragment it takes is answered by
//     iceRestartAnswer(), whose text parses back as a fragment with the server's credentials.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "sdp/answer.hpp"

using namespace kaiwa;

namespace {

void roundTrip(const sdp::Description& d) {
  std::string text = sdp::write(d);
  auto again = sdp::parse(text);
  FUZZ_CHECK(again.has_value(), again ? std::string_view{} : std::string_view(again.error().reason));
  FUZZ_CHECK(*again == d, text);
  FUZZ_CHECK(sdp::write(*again) == text, text);
}

sdp::ServerParams server(bool viewer) {
  sdp::ServerParams s;
  s.iceUfrag = "fuzzufrag";
  s.icePwd = "fuzzpasswordfuzzpassword";
  s.fingerprint = "00:11:22:33";
  s.addresses = {{"127.0.0.1", 7881, 7882}, {"::1", 7881, std::nullopt}};
  s.receive = !viewer;
  s.send = viewer;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto f = sdp::parseIceFragment(in)) {
    auto text = sdp::iceRestartAnswer(*f, server(false));
    FUZZ_CHECK(text.has_value());
    auto back = sdp::parseIceFragment(*text);
    FUZZ_CHECK(back.has_value(), *text);
    FUZZ_CHECK(back->iceUfrag == "fuzzufrag", *text);
  } else {
    FUZZ_CHECK(!f.error().reason.empty());
  }
  auto d = sdp::parse(in);
  if (!d) {
    FUZZ_CHECK(!d.error().reason.empty());
    return 0;
  }
  roundTrip(*d);

  for (bool viewer : {false, true}) {
    auto a = sdp::answer(*d, server(viewer));
    if (a) {
      roundTrip(*a);
    } else {
      FUZZ_CHECK(!a.error().reason.empty());
    }
  }

  std::vector<sdp::OutgoingTrack> tracks;
  for (const auto& m : d->media) {
    if (!m.isRtp() || !m.mid) continue;
    sdp::OutgoingTrack t;
    t.mid = *m.mid;
    t.kind = m.kind;
    t.streamId = "s";
    t.trackId = t.mid;
    t.cname = "c";
    t.ssrc = 1;
    t.codecs = m.codecs;
    t.extmaps = m.extmaps;
    tracks.push_back(std::move(t));
  }
  auto o = sdp::offer(tracks, std::nullopt, server(false));
  if (o) roundTrip(*o);
  return 0;
}
