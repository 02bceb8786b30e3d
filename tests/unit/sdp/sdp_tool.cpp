// sdp_tool: the SDP module as a command, for checks in a real browser (tests/unit/sdp/accept.mjs) and by hand.
//
//   sdp_tool answer [--send] [--no-receive] [--no-video] < offer.sdp   the SFU's answer (a publisher's by default)
//   sdp_tool offer                                       the SFU's offer to a subscriber: audio, video, data
//   sdp_tool write < any.sdp                             parse and write again
//
// Credentials, fingerprint and address are fixed, well-formed values (127.0.0.1:7881, UDP and TCP): a browser
// accepts the description without ever reaching a server. Errors go to stderr with exit status 1.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "sdp/answer.hpp"

using namespace kaiwa::sdp;

namespace {

ServerParams server() {
  ServerParams s;
  s.iceUfrag = "kaiwa1234";
  s.icePwd = "0123456789abcdefghijklmn";
  s.fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
  s.addresses = {{"127.0.0.1", 7881, 7881}};
  s.sessionId = "4611731400430051336";
  return s;
}

int print(const Result<Description>& d) {
  if (!d) {
    std::cerr << "error: " << d.error().message() << "\n";
    return 1;
  }
  std::cout << write(*d);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  ServerParams s = server();
  if (cmd == "offer") {
    OutgoingTrack audio{"0",
                        "audio",
                        Direction::kSendOnly,
                        false,
                        "stream1",
                        "audio1",
                        "kaiwa",
                        1001,
                        std::nullopt,
                        defaultOfferCodecs("audio"),
                        defaultOfferExtmaps("audio")};
    OutgoingTrack video{"1",
                        "video",
                        Direction::kSendOnly,
                        false,
                        "stream1",
                        "video1",
                        "kaiwa",
                        2001,
                        2002,
                        defaultOfferCodecs("video"),
                        defaultOfferExtmaps("video")};
    return print(offer({audio, video}, OutgoingData{"2"}, s));
  }
  std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  auto parsed = parse(text);
  if (!parsed) {
    std::cerr << "error: " << parsed.error().message() << "\n";
    return 1;
  }
  if (cmd == "write") {
    std::cout << write(*parsed);
    return 0;
  }
  if (cmd == "answer") {
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--send") {
        // What a viewer is sent: the audio and video of one stream, on mids 0 and 1.
        s.send = true;
        s.senders = {
            {"0", "audio", Direction::kSendOnly, false, "stream1", "audio1", "kaiwa", 1001, std::nullopt, {}, {}},
            {"1", "video", Direction::kSendOnly, false, "stream1", "video1", "kaiwa", 2001, 2002, {}, {}}};
      }
      if (a == "--no-receive") s.receive = false;
      if (a == "--no-video") s.acceptVideo = false;
    }
    return print(answer(*parsed, s));
  }
  std::cerr << "usage: sdp_tool answer [--send] [--no-receive] [--no-video] | offer | write\n";
  return 2;
}
