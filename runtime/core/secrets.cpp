#include "core/secrets.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace hoist {
namespace {

std::mutex g_mu;
std::vector<std::string>& Secrets() {
  static std::vector<std::string> v;
  return v;
}

}  // namespace

void RegisterSecret(std::string_view value) {
  if (value.size() < 3) return;
  std::lock_guard lock(g_mu);
  auto& v = Secrets();
  if (std::find(v.begin(), v.end(), value) != v.end()) return;
  v.emplace_back(value);
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
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

std::string ReadSecret(const std::string& name) {
  if (name.empty()) throw Error("secret", "invalid", "secret name must not be empty");
  if (const char* v = std::getenv(name.c_str()); v && *v) {
    RegisterSecret(v);
    return v;
  }
  std::string file_var = name + "_FILE";
  if (const char* path = std::getenv(file_var.c_str()); path && *path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      throw Error("secret", "not_found",
                  "secret " + name + ": cannot read the file named by " + file_var + " (" + path + ")");
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string value = ss.str();
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    if (value.empty()) throw Error("secret", "not_found", "secret " + name + ": file " + path + " is empty");
    RegisterSecret(value);
    return value;
  }
  throw Error("secret", "not_found",
              "secret " + name + " is not set (set the environment variable " + name + " or " + file_var +
                  " to a file holding it)");
}

}  // namespace hoist
