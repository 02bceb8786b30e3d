#pragma once
// kaiwa's native signaling protocol (docs/protocol.md): JSON text frames <-> room-core requests and events.
// decode() never throws: any input yields a Request or a DecodeError that the session answers with `error`.
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/clock.hpp"
#include "signal/limits.hpp"
#include "signal/types.hpp"

namespace kaiwa::signal::native {

inline constexpr int kProtocolVersion = 1;

enum class RequestType : uint8_t {
  kJoin,
  kResume,
  kLeave,
  kSignal,
  kMessage,
  kChat,
  kState,
  kPing,
  kPublish,           // SFU rooms (docs/protocol.md, "SFU rooms")
  kSubscribeAnswer,   //
  kUnpublish,         //
  kSubscribeRestart,  //
  kRecordStart,       // the room's recording (docs/protocol.md, "Recording")
  kRecordStop,        //
  kTileSize,          // SFU rooms: the rendered size of remote video tiles (simulcast layer selection)
};

// A track of a publish request: the m-line of the page's offer and what it carries.
struct PublishTrack {
  std::string mid;
  std::string source;  // camera, microphone, screen, screen-audio (checked)
};

// The rendered size of the video a subscribe-offer's m-line carries, on the page (0 x 0: hidden).
struct TileSize {
  std::string mid;
  uint16_t width = 0;
  uint16_t height = 0;
};
inline constexpr std::size_t kMaxTileSizes = 64;  // per message: an offer has at most 64 m-lines

struct Request {
  RequestType type = RequestType::kPing;
  int64_t id = kNoRequest;
  std::string room;                  // join, resume
  std::string name;                  // join (may be empty when a token names the user)
  std::string token;                 // join
  std::string user;                  // join: not on the wire; the session sets it to the verified token's subject
  std::string peer;                  // resume
  std::string resume;                // resume
  std::string to;                    // signal, message (empty: broadcast)
  std::string data;                  // signal, message: the `data` value re-serialized as JSON
  std::string text;                  // chat
  MediaStatePatch state;             // join (initial), state
  std::string media;                 // join: auto, sfu, mesh (checked), or empty
  std::string sdp;                   // publish, subscribe-answer
  uint64_t version = 0;              // subscribe-answer
  std::vector<PublishTrack> tracks;  // publish
  std::vector<TileSize> tiles;       // tile-size
};

struct DecodeError {
  int64_t id = kNoRequest;  // the request id, when one could be read
  ErrorCode code = ErrorCode::kBadMessage;
  std::string message;
};

using DecodeResult = std::variant<Request, DecodeError>;

DecodeResult decode(std::string_view text);

// Appends the JSON text of `event` to `out`.
void encode(const Event& event, std::string& out);
std::string encode(const Event& event);
std::string encodeHello(const Limits& limits, Millis heartbeat, std::string_view version);
std::string encodePong();

}  // namespace kaiwa::signal::native
