// tests/bench/migrate: 1,000 small migrations applied to a fresh SQLite
// database with fsync on (synchronous=FULL), by hoist's migrator with
// policy "any" and with policy "expand" (the per-migration schema check),
// against the durable floor measured in the same run: the same statements
// through the SQLite C API as 1,000 transactions that each also insert a
// history row (issue 4, docs/performance.md "Migrations"). Prints times,
// the per-migration overhead and the ratios; exits 1 when a target is missed.
//
//   bench_migrate [--count N] [--dir DIR] [--rounds R] [--journal delete|wal]
//
// Each round measures floor, any and expand on fresh databases in DIR
// (default /tmp: a real disk here, so fsync costs what it costs); the
// medians are reported.
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "db/connection.h"
#include "db/migration_files.h"
#include "db/migrator.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU seconds (user + system) of this process: what the code costs, apart
// from waiting for the disk.
double CpuNow() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Timing {
  double wall = 0, cpu = 0;
};

struct Timer {
  Clock::time_point t0 = Clock::now();
  double c0 = CpuNow();
  Timing Stop() const { return {Seconds(t0), CpuNow() - c0}; }
};

void Check(int rc, sqlite3* db, const std::string& what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::fprintf(stderr, "bench: %s: %s\n", what.c_str(), sqlite3_errmsg(db));
    std::exit(2);
  }
}

void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "bench: %s: %s\n", sql.c_str(), err ? err : "?");
    std::exit(2);
  }
}

struct Migration {
  std::string file, up, down;
};

// Four small kinds in turn: a new table, a nullable column, an index, a row.
std::vector<Migration> MakeMigrations(int count) {
  std::vector<Migration> out;
  for (int i = 0; i < count; ++i) {
    int t = i - i % 4;
    Migration m;
    switch (i % 4) {
      case 0:
        m.file = fmt::format("{:05}_create_t{}.sql", i + 1, t);
        m.up = fmt::format("CREATE TABLE t{} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TEXT);", t);
        m.down = fmt::format("DROP TABLE t{};", t);
        break;
      case 1:
        m.file = fmt::format("{:05}_add_note_t{}.sql", i + 1, t);
        m.up = fmt::format("ALTER TABLE t{} ADD COLUMN note TEXT;", t);
        m.down = fmt::format("ALTER TABLE t{} DROP COLUMN note;", t);
        break;
      case 2:
        m.file = fmt::format("{:05}_index_t{}.sql", i + 1, t);
        m.up = fmt::format("CREATE INDEX t{0}_name ON t{0} (name);", t);
        m.down = fmt::format("DROP INDEX t{}_name;", t);
        break;
      default:
        m.file = fmt::format("{:05}_seed_t{}.sql", i + 1, t);
        m.up = fmt::format("INSERT INTO t{} (name, created_at) VALUES ('row {}', '2024-01-01T00:00:00Z');", t, i);
        m.down = fmt::format("DELETE FROM t{} WHERE name = 'row {}';", t, i);
        break;
    }
    out.push_back(std::move(m));
  }
  return out;
}

void Fresh(const std::string& path) {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(path + suffix);
}

// The floor: each migration's statements and a history row in one durable
// transaction, with prepared statements where a program would keep them.
Timing Floor(const std::string& path, const std::vector<Migration>& migs, const std::string& journal) {
  Fresh(path);
  sqlite3* db = nullptr;
  Check(sqlite3_open(path.c_str(), &db), db, "open");
  Exec(db, "PRAGMA journal_mode = " + journal + "; PRAGMA synchronous = FULL");
  Exec(db, "CREATE TABLE history (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, "
           "down_source TEXT, applied_at TEXT NOT NULL)");
  sqlite3_stmt* ins = nullptr;
  Check(sqlite3_prepare_v2(db, "INSERT INTO history VALUES (?1, ?2, ?3, ?4, ?5)", -1, &ins, nullptr), db, "prepare");
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  Check(sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, nullptr), db, "prepare");
  Check(sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr), db, "prepare");
  Timer t;
  for (size_t i = 0; i < migs.size(); ++i) {
    Check(sqlite3_step(begin), db, "begin");
    sqlite3_reset(begin);
    Exec(db, migs[i].up);
    sqlite3_bind_int64(ins, 1, static_cast<sqlite3_int64>(i + 1));
    sqlite3_bind_text(ins, 2, migs[i].file.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, migs[i].down.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, "2024-01-01T00:00:00.000Z", -1, SQLITE_STATIC);
    Check(sqlite3_step(ins), db, "insert");
    sqlite3_reset(ins);
    Check(sqlite3_step(commit), db, "commit");
    sqlite3_reset(commit);
  }
  Timing s = t.Stop();
  sqlite3_finalize(ins);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  return s;
}

// For scale: everything in one transaction.
Timing OneTransaction(const std::string& path, const std::vector<Migration>& migs, const std::string& journal) {
  Fresh(path);
  sqlite3* db = nullptr;
  Check(sqlite3_open(path.c_str(), &db), db, "open");
  Exec(db, "PRAGMA journal_mode = " + journal + "; PRAGMA synchronous = FULL");
  Timer t;
  Exec(db, "BEGIN");
  for (const auto& m : migs) Exec(db, m.up);
  Exec(db, "COMMIT");
  Timing s = t.Stop();
  sqlite3_close(db);
  return s;
}

// hoist: open, load and checksum the files, take the lock, apply each
// migration in its own transaction with its history row.
Timing Hoist(const std::string& path, const std::string& dir, const std::string& policy, const std::string& journal,
             size_t expect) {
  Fresh(path);
  {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    Exec(db, "PRAGMA journal_mode = " + journal);
    sqlite3_close(db);
  }
  Timer t;
  auto conn = hoist::db::Open("sqlite://" + path);
  conn->Exec("PRAGMA synchronous = FULL");
  hoist::db::UpOptions o;
  o.policy = policy;
  auto r = hoist::db::Up(*conn, dir, o);
  Timing s = t.Stop();
  if (r.applied.size() != expect) {
    std::fprintf(stderr, "bench: applied %zu of %zu\n", r.applied.size(), expect);
    std::exit(2);
  }
  return s;
}

Timing Median(std::vector<Timing> v) {
  std::vector<double> w, c;
  for (const auto& t : v) {
    w.push_back(t.wall);
    c.push_back(t.cpu);
  }
  std::sort(w.begin(), w.end());
  std::sort(c.begin(), c.end());
  return {w[w.size() / 2], c[c.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  int count = 1000;
  int rounds = 3;
  std::string base = "/tmp";
  std::string journal = "delete";
  std::string only;  // run one measurement (for strace/perf)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) count = std::atoi(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--dir" && i + 1 < argc) base = argv[++i];
    else if (a == "--journal" && i + 1 < argc) journal = argv[++i];
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: bench_migrate [--count N] [--dir DIR] [--rounds R] [--journal delete|wal] "
                   "[--only floor|any|expand]\n");
      return 2;
    }
  }
  std::string work = base + "/hoist-bench-migrate-" + std::to_string(::getpid());
  fs::create_directories(work + "/migrations");
  auto migs = MakeMigrations(count);
  for (const auto& m : migs) {
    std::ofstream(work + "/migrations/" + m.file) << "-- hoist:up\n" << m.up << "\n-- hoist:down\n" << m.down << "\n";
  }
  const std::string db = work + "/bench.db";
  std::vector<Timing> floor, any, expand, one;
  try {
    if (!only.empty()) {
      Timing t = only == "floor" ? Floor(db, migs, journal)
                                 : Hoist(db, work + "/migrations", only, journal, migs.size());
      std::printf("%s: %.3f s wall, %.3f s cpu\n", only.c_str(), t.wall, t.cpu);
      fs::remove_all(work);
      return 0;
    }
    for (int r = 0; r < rounds; ++r) {
      floor.push_back(Floor(db, migs, journal));
      any.push_back(Hoist(db, work + "/migrations", "any", journal, migs.size()));
      expand.push_back(Hoist(db, work + "/migrations", "expand", journal, migs.size()));
      one.push_back(OneTransaction(db, migs, journal));
    }
  } catch (const hoist::Error& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    return 2;
  }
  fs::remove_all(work);

  const Timing F = Median(floor), A = Median(any), X = Median(expand), O = Median(one);
  const double f = F.wall, a = A.wall, x = X.wall;
  const double n = count;
  std::printf("%d migrations, journal_mode=%s, synchronous=FULL, median of %d rounds (dir %s)\n", count,
              journal.c_str(), rounds, base.c_str());
  std::printf("  %-46s %8s %10s %9s %8s\n", "", "wall", "per migr.", "cpu", "ratio");
  auto line = [&](const char* what, const Timing& t, bool ratio) {
    std::printf("  %-46s %7.3fs %8.3fms %8.3fs %s\n", what, t.wall, t.wall / n * 1000, t.cpu,
                ratio ? fmt::format("{:7.2f}x", t.wall / f).c_str() : "");
  };
  line("one transaction (all the SQL, for scale)", O, false);
  line("durable floor (C API: tx + history row each)", F, true);
  line("hoist up, policy any", A, true);
  line("hoist up, policy expand (schema check)", X, true);
  // What hoist adds per migration: wall time over the floor (noisy on a
  // shared disk: the fsyncs dominate and vary from run to run) and CPU time
  // over the floor's. hoist makes exactly the floor's fsyncs and writes
  // (strace -c: one fdatasync per commit in WAL, four with a rollback
  // journal, for both), so the CPU time is what it adds; the projection and
  // the alembic comparison use it, the ratio to the floor uses wall time.
  const double any_wall_ms = (a - f) / n * 1000, any_cpu_ms = (A.cpu - F.cpu) / n * 1000;
  const double exp_wall_ms = (x - f) / n * 1000, exp_cpu_ms = (X.cpu - F.cpu) / n * 1000;
  const double any_over_ms = std::max(any_cpu_ms, 0.0), exp_over_ms = std::max(exp_cpu_ms, 0.0);
  std::printf("  per-migration overhead over the floor: any %.3f ms wall, %.3f ms cpu; expand %.3f ms wall, %.3f ms "
              "cpu\n",
              any_wall_ms, any_cpu_ms, exp_wall_ms, exp_cpu_ms);
  // Issue 4's figures on this machine, quiet: 200 migrations with alembic
  // 0.59 s; 200 durable transactions with a history row 0.157 s.
  const double issue_floor_ms = 157.0 / 200, alembic_ms = 590.0 / 200;
  const double alembic_over_ms = alembic_ms - issue_floor_ms;
  // Below 0.01 ms the difference is noise (two runs of the floor differ more).
  const double any_cmp_ms = std::max(any_over_ms, 0.01);
  std::printf("  alembic (issue figures): %.2f ms/migration, %.2f ms over the floor -> hoist's overhead is %s%.0fx "
              "smaller\n",
              alembic_ms, alembic_over_ms, any_over_ms < 0.01 ? ">= " : "", alembic_over_ms / any_cmp_ms);
  // The absolute targets assume the issue's disk; this run's floor says
  // what this disk costs. Projected = the issue's floor + hoist's overhead.
  const bool slow_disk = f / n * 1000 > issue_floor_ms * 1.2;
  const double proj_any = (issue_floor_ms + any_over_ms) * n / 1000, proj_exp = (issue_floor_ms + exp_over_ms) * n / 1000;
  if (slow_disk) {
    std::printf("  this disk's durable transaction costs %.2f ms (the issue's: %.2f ms); on that disk: any %.3f s, "
                "expand %.3f s (projected)\n",
                f / n * 1000, issue_floor_ms, proj_any, proj_exp);
  }
  bool ok = true;
  auto target = [&](bool met, const std::string& what) {
    std::printf("  target %-62s %s\n", what.c_str(), met ? "met" : "MISSED");
    ok = ok && met;
  };
  double scale = n / 1000.0;
  target((slow_disk ? proj_any : a) < 1.0 * scale,
         fmt::format("policy any < {:.2f} s{}", 1.0 * scale, slow_disk ? " (projected)" : ""));
  target(a <= 1.5 * f, "policy any within 1.5x of the floor");
  target(alembic_over_ms / any_cmp_ms >= 5, ">= 5x less per-migration cost than alembic");
  target((slow_disk ? proj_exp : x) < 3.0 * scale,
         fmt::format("policy expand < {:.2f} s{}", 3.0 * scale, slow_disk ? " (projected)" : ""));
  return ok ? 0 : 1;
}
