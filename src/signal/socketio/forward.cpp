#include "signal/socketio/forward.hpp"

#include <charconv>

namespace kaiwa::signal::socketio {
namespace {

bool token(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

// A header's name or value as it may be written back to a client: printable, no line breaks.
bool headerText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

}  // namespace

std::string encodeHttpForward(std::string_view method, std::string_view query, std::string_view body) {
  std::string out;
  out.reserve(3 + method.size() + query.size() + body.size());
  out += 'H';
  out += method;
  out += '\n';
  out += query;
  out += '\n';
  out += body;
  return out;
}

std::string encodeWsForward(std::string_view query) {
  std::string out = "W";
  out += query;
  return out;
}

std::optional<ForwardedRequest> decodeForward(std::string_view frame) {
  if (frame.empty()) return std::nullopt;
  ForwardedRequest r;
  std::string_view rest = frame.substr(1);
  if (frame[0] == 'W') {
    if (rest.find('\n') != std::string_view::npos) return std::nullopt;
    r.kind = ForwardedRequest::Kind::kWebSocket;
    r.query = rest;
    return r;
  }
  if (frame[0] != 'H') return std::nullopt;
  auto eol = rest.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  r.method = rest.substr(0, eol);
  if (!token(r.method)) return std::nullopt;
  rest.remove_prefix(eol + 1);
  eol = rest.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  r.query = rest.substr(0, eol);
  r.body = rest.substr(eol + 1);
  return r;
}

std::string encodeForwardedResponse(const http::Response& r) {
  std::string out = std::to_string(r.status);
  out += ' ';
  out += r.contentType;
  out += '\n';
  for (const auto& [name, value] : r.headers) {
    out += name;
    out += ": ";
    out += value;
    out += '\n';
  }
  out += '\n';
  out += r.body;
  return out;
}

std::optional<http::Response> decodeForwardedResponse(std::string_view frame) {
  auto eol = frame.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  std::string_view first = frame.substr(0, eol);
  auto space = first.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  http::Response r;
  auto [end, ec] = std::from_chars(first.data(), first.data() + space, r.status);
  if (ec != std::errc() || end != first.data() + space || r.status < 100 || r.status > 599) return std::nullopt;
  r.contentType = std::string(first.substr(space + 1));
  if (!headerText(r.contentType)) return std::nullopt;
  frame.remove_prefix(eol + 1);
  for (;;) {
    eol = frame.find('\n');
    if (eol == std::string_view::npos) return std::nullopt;
    std::string_view line = frame.substr(0, eol);
    frame.remove_prefix(eol + 1);
    if (line.empty()) break;
    auto colon = line.find(": ");
    if (colon == std::string_view::npos || !token(line.substr(0, colon))) return std::nullopt;
    std::string_view value = line.substr(colon + 2);
    if (!headerText(value) || r.headers.size() >= 16) return std::nullopt;
    r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  r.body = std::string(frame);
  return r;
}

std::string wrapWsFrame(std::string_view frame, bool binary) {
  std::string out;
  out.reserve(frame.size() + 1);
  out += binary ? 'B' : 'T';
  out += frame;
  return out;
}

std::optional<WsFrame> unwrapWsFrame(std::string_view frame) {
  if (frame.empty() || (frame[0] != 'T' && frame[0] != 'B')) return std::nullopt;
  return WsFrame{frame.substr(1), frame[0] == 'B'};
}

}  // namespace kaiwa::signal::socketio
