#pragma once
// Writing JSON text without a DOM: string escapes, and JsonEcho, which writes a value again while Boost.JSON's
// basic_parser reads it (the relay paths of the native and Socket.IO codecs: checked in full, passed on as written).
#include <cstddef>
#include <string>
#include <string_view>

namespace kaiwa::common {

// Appends `s` escaped for the inside of a JSON string literal (no quotes): '"', '\\' and control characters.
void appendJsonEscaped(std::string& out, std::string_view s);
// Appends `s` as a JSON string literal, quotes included.
void appendJsonString(std::string& out, std::string_view s);

// Writes JSON text to `out` as a basic_parser handler reports it, less whitespace: numbers keep their text, strings
// their characters (escaped again only where the parser decoded an escape). The handler calls it for the values it
// wants written, and may leave some out (a member: skip both key and value) or add its own with inject(). Commas
// come from the echo's own count of what it wrote, so `out` may hold anything before the first value.
class JsonEcho {
 public:
  // `input`: the whole text being parsed (pieces that lie in it need no escaping).
  JsonEcho(std::string_view input, std::string& out) : input_(input), out_(out) {}

  void open(char bracket) {  // '{' or '['
    separate();
    out_.push_back(bracket);
    first_ = true;
  }
  void close(char bracket) {
    out_.push_back(bracket);
    first_ = false;
  }
  // A key arrives in pieces (keyPart... then keyEnd); so do strings and numbers.
  void keyPart(std::string_view s) { textPart(s); }
  void keyEnd() {
    out_ += "\":";
    inText_ = false;
    first_ = true;  // no comma between a key and its value
  }
  void stringPart(std::string_view s) { textPart(s); }
  void stringEnd() {
    out_.push_back('"');
    inText_ = false;
    first_ = false;
  }
  void numberPart(std::string_view s) {
    if (!inText_) {
      separate();
      inText_ = true;
    }
    out_.append(s);  // the number's own text: valid JSON, and exactly what was sent
  }
  void numberEnd() {
    inText_ = false;
    first_ = false;
  }
  void literal(std::string_view text) {  // true, false, null
    separate();
    out_.append(text);
    first_ = false;
  }
  // Text of the caller's own, valid JSON in this place: a value in an array, or `"key":value` in an object.
  void inject(std::string_view text) {
    separate();
    out_.append(text);
    first_ = false;
  }
  // A string value of the caller's own, escaped here.
  void string(std::string_view value) {
    separate();
    appendJsonString(out_, value);
    first_ = false;
  }
  // A member of the caller's own with a string value: `"key":"value"` (the key written as it is).
  void member(std::string_view key, std::string_view value) {
    separate();
    out_.push_back('"');
    out_.append(key);
    out_ += "\":";
    appendJsonString(out_, value);
    first_ = false;
  }
  // The next thing written starts a new document (no comma before it).
  void restart() {
    first_ = true;
    inText_ = false;
  }

 private:
  void textPart(std::string_view s) {  // a piece of a key or string: the quote opens it
    if (!inText_) {
      separate();
      out_.push_back('"');
      inText_ = true;
    }
    appendDecoded(s);
  }
  void separate() {
    if (!first_) out_.push_back(',');
  }
  // A piece that lies in the input is a run of it between escapes: it holds no '"', no '\\' and no control
  // character (JSON has none unescaped), so it is copied. Pieces decoded from escapes come from the parser's own
  // buffer and are escaped again.
  void appendDecoded(std::string_view s);

  std::string_view input_;
  std::string& out_;
  bool first_ = true;    // nothing written yet in the current container (or after a key)
  bool inText_ = false;  // inside a key, string or number that arrives in pieces
};

}  // namespace kaiwa::common
