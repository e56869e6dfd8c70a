// The example API of examples/sqlite-bluegreen: one binary that is release
// 1, 2 or 3 of a small notes service (--release N), sharing one SQLite file
// in WAL mode with the other colour. Each release's code works with the
// schema of its own expand phase, so the old colour keeps working after the
// new one's expand migrations ran:
//   release 1: notes(id, body, author)              writes author
//   release 2: + author_name (expand, backfilled)    writes both, reads author_name
//   release 3: drops author (contract, later)        writes author_name only
// `hoist_example_app load ...` is the demo's and the tests' load generator.
// With --db postgres://... (APP_DB) the notes live in PostgreSQL instead
// (the PostgreSQL blue/green tests); the static build has no libpq.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#ifdef HOIST_EXAMPLE_POSTGRES
#include <libpq-fe.h>
#endif

namespace {

std::atomic<bool> g_stop{false};
int g_wake[2] = {-1, -1};

void OnSignal(int) {
  g_stop = true;
  char c = 1;
  (void)!::write(g_wake[1], &c, 1);
}

std::string Arg(int argc, char** argv, const std::string& name, const std::string& def = "") {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  std::string var = "APP_";
  for (char c : name.substr(2)) var += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const char* env = std::getenv(var.c_str());
  return env ? env : def;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

// ---- the service ------------------------------------------------------------

struct App {
  std::string colour;
  std::string instance;  // --instance NAME: which host answered (X-Instance), in a fleet
  int release = 1;
  sqlite3* db = nullptr;
#ifdef HOIST_EXAMPLE_POSTGRES
  PGconn* pg = nullptr;  // instead of db, for a postgres:// --db
#endif
  // Fault injection for the demo and the tests (--fail-after S): health
  // answers 500 once S seconds have passed, like a release that degrades.
  double fail_after = -1;
  std::string fail_file;  // --fail-file F: health answers 500 while F exists
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::mutex mu;  // one connection, one statement at a time: simple and enough here
};

struct Response {
  int status = 200;
  std::string body;
};

#ifdef HOIST_EXAMPLE_POSTGRES
bool PgQuery(PGconn* pg, const std::string& sql, const std::vector<std::string>& binds,
             std::vector<std::vector<std::string>>* rows, std::string* err) {
  // The server may have dropped the session (a restore, a restart): once more on a new one.
  if (PQstatus(pg) != CONNECTION_OK) PQreset(pg);
  std::vector<const char*> values;
  for (const auto& b : binds) values.push_back(b.c_str());
  PGresult* res = PQexecParams(pg, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                               nullptr, 0);
  ExecStatusType st = PQresultStatus(res);
  bool ok = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
  if (!ok) {
    *err = PQresultErrorMessage(res);
    while (!err->empty() && err->back() == '\n') err->pop_back();
  } else if (rows) {
    for (int r = 0; r < PQntuples(res); ++r) {
      std::vector<std::string> row;
      for (int c = 0; c < PQnfields(res); ++c) row.emplace_back(PQgetvalue(res, r, c));
      rows->push_back(std::move(row));
    }
  }
  PQclear(res);
  return ok;
}
#endif

// Runs sql with text bindings ($1, $2: both databases read them); rows as
// vectors of text (NULL = "").
bool Query(App& app, const std::string& sql, const std::vector<std::string>& binds,
           std::vector<std::vector<std::string>>* rows, std::string* err) {
#ifdef HOIST_EXAMPLE_POSTGRES
  if (app.pg) return PgQuery(app.pg, sql, binds, rows, err);
#endif
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(app.db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    *err = sqlite3_errmsg(app.db);
    return false;
  }
  for (size_t i = 0; i < binds.size(); ++i) sqlite3_bind_text(st, static_cast<int>(i + 1), binds[i].c_str(), -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (!rows) continue;
    std::vector<std::string> row;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      const unsigned char* t = sqlite3_column_text(st, c);
      row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
    }
    rows->push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) *err = sqlite3_errmsg(app.db);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE;
}

std::string Param(const std::string& query, const std::string& name) {
  size_t p = 0;
  while (p < query.size()) {
    size_t amp = query.find('&', p);
    std::string kv = query.substr(p, amp == std::string::npos ? std::string::npos : amp - p);
    if (kv.rfind(name + "=", 0) == 0) return kv.substr(name.size() + 1);
    if (amp == std::string::npos) break;
    p = amp + 1;
  }
  return "";
}

Response Handle(App& app, const std::string& method, const std::string& path, const std::string& query,
                const std::string& body) {
  std::lock_guard<std::mutex> lock(app.mu);
  std::string err;
  std::vector<std::vector<std::string>> rows;
  if (path == "/api/health") {
    bool failing = app.fail_after >= 0 &&
                   std::chrono::steady_clock::now() - app.started >= std::chrono::duration<double>(app.fail_after);
    if (!app.fail_file.empty() && ::access(app.fail_file.c_str(), F_OK) == 0) failing = true;
    if (failing) {
      return {500, "{\"status\":\"failing\",\"colour\":\"" + app.colour + "\",\"version\":\"" +
                       std::to_string(app.release) + "\",\"error\":\"fault injected (--fail-after/--fail-file)\"}\n"};
    }
    // Healthy = the database answers the query this release depends on.
    std::string probe = app.release >= 2 ? "SELECT count(author_name) FROM notes" : "SELECT count(*) FROM notes";
    if (!Query(app, probe, {}, &rows, &err)) {
      return {503, "{\"status\":\"down\",\"colour\":\"" + app.colour + "\",\"version\":\"" +
                       std::to_string(app.release) + "\",\"error\":\"" + JsonEscape(err) + "\"}\n"};
    }
    return {200, "{\"status\":\"ok\",\"colour\":\"" + app.colour + "\",\"version\":\"" + std::to_string(app.release) +
                     "\",\"notes\":" + rows[0][0] + "}\n"};
  }
  if (path == "/api/notes" && method == "POST") {
    std::string author = Param(query, "author");
    if (author.empty()) author = "anonymous";
    std::string sql = app.release == 1   ? "INSERT INTO notes(body, author) VALUES($1, $2)"
                      : app.release == 2 ? "INSERT INTO notes(body, author, author_name) VALUES($1, $2, $2)"
                                         : "INSERT INTO notes(body, author_name) VALUES($1, $2)";
    if (!Query(app, sql + " RETURNING id", {body, author}, &rows, &err) || rows.empty()) {
      return {500, "{\"error\":\"" + JsonEscape(err) + "\"}\n"};
    }
    return {201, "{\"id\":" + rows[0][0] + ",\"colour\":\"" + app.colour + "\"}\n"};
  }
  if (path == "/api/notes" && method == "GET") {
    std::string who = app.release == 1 ? "author" : app.release == 2 ? "COALESCE(author_name, author)" : "author_name";
    if (!Query(app, "SELECT id, body, " + who + " FROM notes ORDER BY id DESC LIMIT 20", {}, &rows, &err)) {
      return {500, "{\"error\":\"" + JsonEscape(err) + "\"}\n"};
    }
    std::string out = "[";
    for (size_t i = 0; i < rows.size(); ++i) {
      out += (i ? "," : "") + std::string("{\"id\":") + rows[i][0] + ",\"body\":\"" + JsonEscape(rows[i][1]) +
             "\",\"author\":\"" + JsonEscape(rows[i][2]) + "\"}";
    }
    return {200, out + "]\n"};
  }
  return {404, "{\"error\":\"no route " + JsonEscape(method + " " + path) + "\"}\n"};
}

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

void Serve(App& app, int fd) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  char buf[16384];
  size_t end;
  while ((end = in.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      ::close(fd);
      return;
    }
    in.append(buf, static_cast<size_t>(n));
  }
  std::string head = in.substr(0, end), lower = head;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t len = 0;
  if (auto p = lower.find("content-length:"); p != std::string::npos) len = std::strtoul(lower.c_str() + p + 15, nullptr, 10);
  while (in.size() < end + 4 + len) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  std::string body = in.substr(end + 4, len);
  size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
  std::string method = head.substr(0, sp1), target = head.substr(sp1 + 1, sp2 - sp1 - 1), query;
  if (auto q = target.find('?'); q != std::string::npos) {
    query = target.substr(q + 1);
    target.resize(q);
  }
  Response r = Handle(app, method, target, query, body);
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + Reason(r.status) + "\r\n" +
                    "Content-Type: application/json\r\nX-Colour: " + app.colour + "\r\nX-Release: " +
                    std::to_string(app.release) + (app.instance.empty() ? "" : "\r\nX-Instance: " + app.instance) +
                    "\r\nContent-Length: " + std::to_string(r.body.size()) +
                    "\r\nConnection: close\r\n\r\n" + r.body;
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
}

int RunServer(int argc, char** argv) {
  App app;
  app.colour = Arg(argc, argv, "--colour", "blue");
  app.release = std::atoi(Arg(argc, argv, "--release", "1").c_str());
  app.instance = Arg(argc, argv, "--instance");
  // --listen 0.0.0.0: reachable from a load balancer on another host.
  std::string listen_on = Arg(argc, argv, "--listen", "127.0.0.1");
  int port = std::atoi(Arg(argc, argv, "--port", "0").c_str());
  std::string path = Arg(argc, argv, "--db");
  if (std::string f = Arg(argc, argv, "--fail-after"); !f.empty()) app.fail_after = std::atof(f.c_str());
  app.fail_file = Arg(argc, argv, "--fail-file");
  if (path.empty() || port <= 0 || app.release < 1 || app.release > 3) {
    std::fprintf(stderr, "usage: hoist_example_app --db PATH|postgres://URL --port N --colour NAME --release 1|2|3 [--listen ADDR] [--instance NAME]\n");
    return 2;
  }
  std::string shown = path;
  if (path.rfind("postgres://", 0) == 0 || path.rfind("postgresql://", 0) == 0) {
#ifdef HOIST_EXAMPLE_POSTGRES
    app.pg = PQconnectdb(path.c_str());
    if (PQstatus(app.pg) != CONNECTION_OK) {
      std::fprintf(stderr, "cannot connect to the database: %s", PQerrorMessage(app.pg));
      return 1;
    }
    // Never the URL: it holds the password.
    shown = std::string("postgres ") + PQdb(app.pg) + " on " + PQhost(app.pg) + ":" + PQport(app.pg);
#else
    std::fprintf(stderr, "this build of hoist_example_app cannot open PostgreSQL databases\n");
    return 2;
#endif
  } else if (sqlite3_open_v2(path.c_str(), &app.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    // The database must exist: hoist's migrations create it. A missing file
    // is a deployment mistake, not something to paper over with an empty db.
    std::fprintf(stderr, "cannot open database %s: %s\n", path.c_str(), sqlite3_errmsg(app.db));
    return 1;
  } else {
    sqlite3_busy_timeout(app.db, 10000);
    sqlite3_exec(app.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
  }

  ::pipe(g_wake);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, listen_on.c_str(), &a.sin_addr) != 1) {
    std::fprintf(stderr, "--listen %s: not an IPv4 address\n", listen_on.c_str());
    return 2;
  }
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1024) != 0) {
    std::fprintf(stderr, "cannot listen on %s:%d: %s\n", listen_on.c_str(), port, std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "release %d (%s) listening on %s:%d, database %s\n", app.release, app.colour.c_str(),
               listen_on.c_str(), port, shown.c_str());
  std::atomic<int> busy{0};
  while (!g_stop) {
    pollfd fds[2] = {{lfd, POLLIN, 0}, {g_wake[0], POLLIN, 0}};
    if (::poll(fds, 2, 1000) <= 0) continue;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++busy;
    std::thread([&app, &busy, fd] {
      Serve(app, fd);
      --busy;
    }).detach();
  }
  // SIGTERM: stop accepting, let the requests in flight finish.
  ::close(lfd);
  for (int i = 0; i < 1000 && busy > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::fprintf(stderr, "release %d (%s) stopped\n", app.release, app.colour.c_str());
  std::lock_guard<std::mutex> lock(app.mu);
  sqlite3_close(app.db);
#ifdef HOIST_EXAMPLE_POSTGRES
  if (app.pg) PQfinish(app.pg);
#endif
  return 0;
}

// ---- the load generator ---------------------------------------------------

struct Reply {
  int status = 0;
  std::string body, colour, release, instance, error;
};

std::string g_load_host = "127.0.0.1";  // load --host: nginx on another host

Reply Request(int port, const std::string& method, const std::string& target, const std::string& body) {
  Reply r;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, g_load_host.c_str(), &a.sin_addr);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    r.error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return r;
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    r.error = "send failed";
    ::close(fd);
    return r;
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
  if (n < 0) r.error = std::string("read: ") + std::strerror(errno);
  ::close(fd);
  size_t end = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) {
    if (r.error.empty()) r.error = "no HTTP answer";
    return r;
  }
  r.status = std::atoi(resp.c_str() + 9);
  std::string head = resp.substr(0, end);
  auto header = [&](const std::string& name) {
    auto p = head.find("\r\n" + name + ": ");
    if (p == std::string::npos) return std::string();
    p += name.size() + 4;
    return head.substr(p, head.find("\r\n", p) - p);
  };
  r.colour = header("X-Colour");
  r.release = header("X-Release");
  r.instance = header("X-Instance");
  r.body = resp.substr(end + 4);
  return r;
}

// load --port P [--host ADDR] [--threads 4] [--seconds S | until SIGTERM or --stop-file F] [--db PATH] [--ready-file F]
// Each thread alternates POST /api/notes and GET /api/notes; a request
// fails unless it gets 2xx. Acknowledged writes' ids are checked in --db at
// the end. Prints one JSON line; exit 0 only with no failure and no loss.
int RunLoad(int argc, char** argv) {
  int port = std::atoi(Arg(argc, argv, "--port", "0").c_str());
  int threads = std::atoi(Arg(argc, argv, "--threads", "4").c_str());
  double seconds = std::atof(Arg(argc, argv, "--seconds", "0").c_str());
  std::string db_path = Arg(argc, argv, "--db");
  std::string ready = Arg(argc, argv, "--ready-file");
  std::string stop_file = Arg(argc, argv, "--stop-file");
  g_load_host = Arg(argc, argv, "--host", "127.0.0.1");
  if (port <= 0) {
    std::fprintf(stderr, "usage: hoist_example_app load --port N [--threads 4] [--seconds S] [--db PATH]\n");
    return 2;
  }
  ::pipe(g_wake);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::mutex mu;
  std::vector<long long> acked;
  std::map<std::string, long> served;  // "release/colour" -> answers
  std::vector<std::string> failures;
  std::atomic<long> requests{0};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds > 0 ? seconds : 1e9);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (long i = 0; !g_stop && std::chrono::steady_clock::now() < deadline; ++i) {
        bool write = i % 2 == 0;
        Reply r = write ? Request(port, "POST", "/api/notes?author=loader" + std::to_string(t),
                                  "note " + std::to_string(t) + "/" + std::to_string(i))
                        : Request(port, "GET", "/api/notes", "");
        ++requests;
        std::lock_guard<std::mutex> lock(mu);
        if (r.status / 100 != 2) {
          failures.push_back((write ? "POST: " : "GET: ") +
                             (r.status ? "status " + std::to_string(r.status) + " " + r.body : r.error));
          continue;
        }
        served["release " + r.release + " (" + r.colour + ")" + (r.instance.empty() ? "" : " on " + r.instance)]++;
        if (write) {
          auto p = r.body.find("\"id\":");
          if (p != std::string::npos) acked.push_back(std::atoll(r.body.c_str() + p + 5));
        }
      }
    });
  }
  if (!ready.empty()) std::ofstream(ready) << "ready\n";
  // --stop-file: a test or script ends the load by creating the file.
  while (!stop_file.empty() && !g_stop && std::chrono::steady_clock::now() < deadline) {
    if (::access(stop_file.c_str(), F_OK) == 0) g_stop = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& th : pool) th.join();

  long missing = -1;
  std::string first_missing;
  auto count_missing = [&](const std::set<long long>& have) {
    for (long long id : acked) {
      if (!have.count(id)) {
        if (!missing) first_missing = std::to_string(id);
        ++missing;
      }
    }
  };
  if (db_path.rfind("postgres://", 0) == 0 || db_path.rfind("postgresql://", 0) == 0) {
    missing = 0;
#ifdef HOIST_EXAMPLE_POSTGRES
    PGconn* pg = PQconnectdb(db_path.c_str());
    PGresult* res = PQstatus(pg) == CONNECTION_OK ? PQexec(pg, "SELECT id FROM notes") : nullptr;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
      missing = static_cast<long>(acked.size());
      first_missing = std::string("cannot read notes: ") + PQerrorMessage(pg);
    } else {
      std::set<long long> have;
      for (int i = 0; i < PQntuples(res); ++i) have.insert(std::atoll(PQgetvalue(res, i, 0)));
      count_missing(have);
    }
    if (res) PQclear(res);
    PQfinish(pg);
#else
    missing = static_cast<long>(acked.size());
    first_missing = "this build cannot open PostgreSQL databases";
#endif
  } else if (!db_path.empty()) {
    sqlite3* db = nullptr;
    missing = 0;
    if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      missing = static_cast<long>(acked.size());
      first_missing = "cannot open " + db_path;
    } else {
      sqlite3_busy_timeout(db, 10000);
      std::set<long long> have;
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(db, "SELECT id FROM notes", -1, &st, nullptr);
      while (st && sqlite3_step(st) == SQLITE_ROW) have.insert(sqlite3_column_int64(st, 0));
      sqlite3_finalize(st);
      count_missing(have);
    }
    sqlite3_close(db);
  }
  std::string by;
  for (const auto& [k, v] : served) by += (by.empty() ? "" : ",") + std::string("\"") + k + "\":" + std::to_string(v);
  std::printf("{\"requests\":%ld,\"failed\":%zu,\"acknowledged_writes\":%zu,\"lost_writes\":%ld,\"served_by\":{%s}%s%s}\n",
              requests.load(), failures.size(), acked.size(), missing, by.c_str(),
              failures.empty() ? "" : (",\"first_failure\":\"" + JsonEscape(failures[0]) + "\"").c_str(),
              first_missing.empty() ? "" : (",\"first_lost\":\"" + JsonEscape(first_missing) + "\"").c_str());
  std::fflush(stdout);
  return failures.empty() && missing <= 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "load") return RunLoad(argc, argv);
  return RunServer(argc, argv);
}
