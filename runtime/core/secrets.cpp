#include "core/secrets.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/log.h"

namespace hoist {
namespace {

std::mutex g_mu;
std::vector<std::string>& Secrets() {
  static std::vector<std::string> v;
  return v;
}

}  // namespace

std::string PercentEncode(std::string_view value, bool lower_hex) {
  static const char* kUpper = "0123456789ABCDEF";
  static const char* kLower = "0123456789abcdef";
  const char* hex = lower_hex ? kLower : kUpper;
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

namespace {

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The value with its %XX sequences decoded; "" when it has none.
std::string PercentDecoded(std::string_view v) {
  std::string out;
  bool any = false;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && Hex(v[i + 1]) >= 0 && Hex(v[i + 2]) >= 0) {
      out += static_cast<char>(Hex(v[i + 1]) * 16 + Hex(v[i + 2]));
      i += 2;
      any = true;
    } else {
      out += v[i];
    }
  }
  return any ? out : std::string();
}

// How the value looks inside a JSON string ("" when the same).
std::string JsonEscaped(std::string_view v) {
  std::string out;
  bool changed = false;
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      changed = true;
    } else if (c < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
      changed = true;
    } else {
      out += static_cast<char>(c);
    }
  }
  return changed ? out : std::string();
}

void AddLocked(std::vector<std::string>& v, std::string form) {
  if (form.size() < kMinSecretLength) return;
  if (std::find(v.begin(), v.end(), form) != v.end()) return;
  v.push_back(std::move(form));
}

}  // namespace

bool RegisterSecret(std::string_view value) {
  if (value.size() < kMinSecretLength) return false;
  std::lock_guard lock(g_mu);
  auto& v = Secrets();
  const size_t before = v.size();
  std::string plain(value);
  for (std::string form : {plain, PercentEncode(plain), PercentEncode(plain, true), PercentDecoded(plain),
                           JsonEscaped(plain)}) {
    if (!form.empty()) AddLocked(v, form);
  }
  if (v.size() != before) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  }
  return true;
}

bool ContainsSecret(std::string_view text) {
  std::lock_guard lock(g_mu);
  for (const auto& s : Secrets()) {
    if (text.find(s) != std::string_view::npos) return true;
  }
  return false;
}

std::string Mask(std::string_view text) {
  std::lock_guard lock(g_mu);
  std::string out(text);
  for (const auto& s : Secrets()) {
    size_t pos = 0;
    while ((pos = out.find(s, pos)) != std::string::npos) {
      out.replace(pos, s.size(), "***");
      pos += 3;
    }
  }
  return out;
}

void ClearSecrets() {
  std::lock_guard lock(g_mu);
  Secrets().clear();
}

namespace {

void WarnIfUnmaskable(const std::string& name, std::string_view value) {
  if (RegisterSecret(value)) return;
  log::Warn("secret " + name + " is shorter than " + std::to_string(kMinSecretLength) +
            " characters: hoist cannot mask it in logs, the journal or errors (masking so short a text would "
            "mangle ordinary output); use a longer secret");
}

}  // namespace

std::string ReadSecret(const std::string& name) {
  if (name.empty()) throw Error("secret", "invalid", "secret name must not be empty");
  if (const char* v = std::getenv(name.c_str()); v && *v) {
    WarnIfUnmaskable(name, v);
    return v;
  }
  std::string file_var = name + "_FILE";
  if (const char* path = std::getenv(file_var.c_str()); path && *path) {
    // An ifstream opens a directory and reads nothing: it would be "empty".
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      throw Error("secret", "not_found",
                  name + ": " + file_var + " names " + path +
                      ", a directory: set it to the file holding the secret");
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      throw Error("secret", "not_found",
                  name + ": cannot read the file named by " + file_var + " (" + path + ")");
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string value = ss.str();
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    if (value.empty()) throw Error("secret", "not_found", name + ": file " + path + " is empty");
    WarnIfUnmaskable(name, value);
    return value;
  }
  throw Error("secret", "not_found",
              name + " is not set (set the environment variable " + name + " or " + file_var +
                  " to a file holding it)");
}

}  // namespace hoist
