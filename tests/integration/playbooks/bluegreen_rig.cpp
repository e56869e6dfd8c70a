#include "integration/playbooks/bluegreen_rig.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>

#include "integration/playbooks/example_pg.h"
#include "support/colour_server.h"
#include "support/pg_cluster.h"
#include "sys/probe.h"

namespace hoist::test {

namespace fs = std::filesystem;

BlueGreenRig::BlueGreenRig(Database database) {
  char tmpl[] = "/tmp/hoist-bluegreen-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  root_ = tmpl;
  const std::string example = std::string(HOIST_EXAMPLES_DIR) + "/sqlite-bluegreen";
  fs::copy(example + "/hoist.lua", root_ + "/hoist.lua");
  fs::copy(example + "/releases", root_ + "/releases", fs::copy_options::recursive);
  fs::create_directories(root_ + "/data");
  fs::create_directories(root_ + "/.hoist");
  if (database == Database::kPostgres) {
    pg_ = &PgCluster::Get();
    pg_database_ = pg_->CreateOwnedDatabase("bluegreen");
    for (const auto& release : fs::directory_iterator(root_ + "/releases")) {
      WriteFile(release.path().string() + "/migrations/0001_create_notes.sql", kPgCreateNotes);
    }
  }
  blue_port_ = FreePort();
  do {
    green_port_ = FreePort();
  } while (green_port_ == blue_port_);
  NginxOptions o;
  o.worker_processes = 2;
  o.upstream_conf = "upstream api {\n    server 127.0.0.1:" + std::to_string(blue_port_) + ";\n}\n";
  nginx_ = std::make_unique<NginxServer>(root_ + "/.hoist/nginx", o);
  nginx_->StartOrSkip();
  env_ = {{"EXAMPLE_APP", HOIST_EXAMPLE_APP},
          {"EXAMPLE_NGINX_PORT", std::to_string(nginx_->port())},
          {"EXAMPLE_BLUE_PORT", std::to_string(blue_port_)},
          {"EXAMPLE_GREEN_PORT", std::to_string(green_port_)},
          {"EXAMPLE_BAKE_SECONDS", "1"},
          {"EXAMPLE_HEALTH_TIMEOUT", "3"}};
  if (pg_) env_["EXAMPLE_DATABASE_URL"] = pg_->Url(pg_database_, pg_database_);
}

BlueGreenRig::~BlueGreenRig() {
  for (const char* colour : {"blue", "green"}) {
    if (auto pid = sys::ReadPidFile(path(std::string(".hoist/run/") + colour + ".pid")); pid && *pid > 0) {
      ::kill(-*pid, SIGKILL);
      ::kill(*pid, SIGKILL);
    }
  }
  nginx_->Stop();
  std::error_code ec;
  fs::remove_all(root_, ec);
}

sys::ProcessResult BlueGreenRig::Hoist(std::vector<std::string> args, std::map<std::string, std::string> env) const {
  for (const auto& [k, v] : env_) env.emplace(k, v);
  return RunHoist(root_, std::move(args), std::move(env));
}

void BlueGreenRig::HoistOk(std::vector<std::string> args, std::map<std::string, std::string> env) const {
  std::string what;
  for (const auto& a : args) what += a + " ";
  auto r = Hoist(std::move(args), std::move(env));
  INFO("hoist " << what << "\n" << Describe(r));
  REQUIRE(r.exit_code == 0);
}

namespace {

std::string Show(const Answer& a, const std::string& release_header) {
  if (a.status != 200) return "status " + std::to_string(a.status) + " " + a.error;
  return "release " + release_header + " (" + a.colour + ")";
}

// The X-Release header of a raw answer body is not kept by HttpGet; the
// example app repeats it in the JSON body as "version".
std::string ReleaseOf(const Answer& a) {
  auto p = a.body.find("\"version\":\"");
  if (p == std::string::npos) return "?";
  p += 11;
  return a.body.substr(p, a.body.find('"', p) - p);
}

std::string Scalar(const std::string& file, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    out = std::string("ERROR: ") + sqlite3_errmsg(db);
    sqlite3_close(db);
    return out;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    out = std::string("ERROR: ") + sqlite3_errmsg(db);
  } else if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

}  // namespace

std::string BlueGreenRig::Traffic() const {
  std::string first, all;
  bool same = true;
  for (int i = 0; i < 6; ++i) {
    Answer a = HttpGet(nginx_->port(), "/api/health");
    std::string seen = Show(a, ReleaseOf(a));
    if (i == 0) first = seen;
    same = same && seen == first;
    all += (i ? "," : "") + seen;
  }
  return same ? first : all;
}

std::string BlueGreenRig::Direct(const std::string& colour) const {
  Answer a = HttpGet(Port(colour), "/api/health");
  if (a.status == 0) return "down";
  return Show(a, ReleaseOf(a));
}

bool BlueGreenRig::Running(const std::string& colour) const {
  auto pid = sys::ReadPidFile(path(".hoist/run/" + colour + ".pid"));
  return pid && sys::ProcessAlive(*pid);
}

std::string BlueGreenRig::Db(const std::string& sql) const {
  if (!pg_) return Scalar(path("data/app.db"), sql);
  std::string out = pg_->Psql(sql, pg_database_);
  return out.substr(0, out.find_first_of("|\n"));
}
std::string BlueGreenRig::State(const std::string& sql) const { return Scalar(path(".hoist/state.db"), sql); }

void BlueGreenRig::AddRelease(const std::string& release, const std::map<std::string, std::string>& more) const {
  const std::string dir = path("releases/" + release + "/migrations/");
  WriteFile(dir + "0001_create_notes.sql", ReadAll(path("releases/1/migrations/0001_create_notes.sql")));
  for (const auto& [file, sql] : more) WriteFile(dir + file, sql);
}

void BlueGreenRig::AddRefusedRelease(const std::string& release) const {
  AddRelease(release, {{"0002_add_tags.sql",
                        "-- hoist:phase expand\n-- hoist:up\nALTER TABLE notes ADD COLUMN tags TEXT;\n"
                        "-- hoist:down\nALTER TABLE notes DROP COLUMN tags;\n"},
                       {"0003_drop_author.sql",
                        "-- hoist:phase expand\n-- hoist:up\nALTER TABLE notes DROP COLUMN author;\n"}});
}

void BlueGreenRig::DeployRefusedRelease(const std::string& release) const {
  HoistOk({"deploy", "-e", "version=1"});
  AddRefusedRelease(release);
  auto r = Hoist({"deploy", "-e", "version=" + release});
  INFO(Describe(r));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("nothing was applied") != std::string::npos);
  CHECK(r.err.find("0003_drop_author.sql") != std::string::npos);
  CHECK(r.err.find("destructive") != std::string::npos);
}

}  // namespace hoist::test
