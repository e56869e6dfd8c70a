// Tests for db/url: every accepted form, percent-decoding, the redacted
// form, and malformed URLs whose messages must never hold the password.
#include "db/url.h"

#include <doctest/doctest.h>

#include "core/secrets.h"
#include "support/support.h"

namespace hoist::db {
namespace {

using test::CatchError;

TEST_SUITE("db/url") {
  TEST_CASE("sqlite absolute relative and memory forms") {
    DbUrl a = ParseUrl("sqlite:///var/lib/app/app.db");
    CHECK(a.engine == Engine::kSqlite);
    CHECK(a.kind() == "sqlite");
    CHECK(a.path == "/var/lib/app/app.db");
    CHECK(a.redacted == "sqlite:///var/lib/app/app.db");

    DbUrl r = ParseUrl("sqlite:data/app.db", "/srv/project");
    CHECK(r.path == "/srv/project/data/app.db");
    CHECK(r.redacted == "sqlite:///srv/project/data/app.db");

    DbUrl m = ParseUrl("sqlite::memory:");
    CHECK(m.memory());
    CHECK(m.path == ":memory:");
    CHECK(m.redacted == "sqlite::memory:");

    DbUrl single = ParseUrl("sqlite:/abs.db");
    CHECK(single.path == "/abs.db");
  }

  TEST_CASE("sqlite percent decoding and mode") {
    DbUrl u = ParseUrl("sqlite:///srv/my%20app/db%23.sqlite?mode=ro");
    CHECK(u.path == "/srv/my app/db#.sqlite");
    CHECK(u.mode == "ro");
    CHECK(u.redacted == "sqlite:///srv/my app/db#.sqlite?mode=ro");
  }

  TEST_CASE("sqlite malformed URLs") {
    auto e = CatchError([] { ParseUrl("sqlite://host/app.db"); });
    CHECK(e.area() == "db");
    CHECK(e.code() == "invalid_url");
    CHECK(e.message() ==
          "invalid database URL \"sqlite://host/app.db\": a sqlite URL has no host: use three slashes for an "
          "absolute path (sqlite:///var/lib/app.db) or none for a relative one (sqlite:app.db) (expected "
          "sqlite:///abs/path.db, sqlite:relative.db or sqlite::memory:)");
    CHECK(CatchError([] { ParseUrl("sqlite:"); }).message() ==
          "invalid database URL \"sqlite:\": the database path is empty (expected sqlite:///abs/path.db, "
          "sqlite:relative.db or sqlite::memory:)");
    CHECK(CatchError([] { ParseUrl("sqlite:///a.db?mode=rwx"); }).message() ==
          "invalid database URL \"sqlite:///a.db?mode=rwx\": mode must be ro, rw or rwc, got 'rwx' (expected "
          "sqlite:///abs/path.db, sqlite:relative.db or sqlite::memory:)");
    CHECK(CatchError([] { ParseUrl("sqlite:///a.db?cache=shared"); }).message() ==
          "invalid database URL \"sqlite:///a.db?cache=shared\": unknown sqlite URL option 'cache' (the only one "
          "is mode=ro|rw|rwc) (expected sqlite:///abs/path.db, sqlite:relative.db or sqlite::memory:)");
    CHECK(CatchError([] { ParseUrl("sqlite:///a%zz.db"); }).message() ==
          "invalid database URL \"sqlite:///a%zz.db\": bad percent-encoding in the path (expected "
          "sqlite:///abs/path.db, sqlite:relative.db or sqlite::memory:)");
  }

  TEST_CASE("postgres URI to conninfo") {
    DbUrl u = ParseUrl("postgres://app:s3cr%40t@db.example.com:6432/shop?sslmode=require&connect_timeout=3");
    CHECK(u.engine == Engine::kPostgres);
    CHECK(u.kind() == "postgres");
    CHECK(u.user == "app");
    CHECK(u.host == "db.example.com");
    CHECK(u.port == "6432");
    CHECK(u.dbname == "shop");
    CHECK(u.has_password);
    CHECK(u.conninfo ==
          "password='s3cr@t' sslmode='require' connect_timeout='3' host='db.example.com' port='6432' user='app' "
          "dbname='shop'");
    CHECK(u.redacted == "postgres://app:***@db.example.com:6432/shop?sslmode=require&connect_timeout=3");
    CHECK(Mask("the password is s3cr@t") == "the password is ***");
  }

  TEST_CASE("postgresql scheme IPv6 socket dir and quoting") {
    DbUrl v6 = ParseUrl("postgresql://u@[::1]:5433/d");
    CHECK(v6.host == "::1");
    CHECK(v6.port == "5433");
    CHECK(v6.redacted == "postgres://u@[::1]:5433/d");

    DbUrl sock = ParseUrl("postgres://u@%2Fvar%2Frun%2Fpostgresql/d");
    CHECK(sock.host == "/var/run/postgresql");
    CHECK(sock.conninfo == "host='/var/run/postgresql' user='u' dbname='d'");

    DbUrl q = ParseUrl("postgres://o%27brien:it%27s%5Cx@h/d");
    CHECK(q.conninfo == "password='it\\'s\\\\x' host='h' user='o\\'brien' dbname='d'");

    DbUrl bare = ParseUrl("postgres:///app");
    CHECK(bare.host.empty());
    CHECK(bare.dbname == "app");
    CHECK(bare.conninfo == "dbname='app'");
    CHECK(bare.redacted == "postgres:///app");
  }

  TEST_CASE("a multi-host URL keeps each host's own port, the default included") {
    // libpq pairs the port list with the host list by position: a port
    // list that lost its empty first entry sends h1's connection to 5433.
    DbUrl u = ParseUrl("postgres://app@h1,h2:5433/shop");
    CHECK(u.host == "h1,h2");
    CHECK(u.port == ",5433");
    CHECK(u.conninfo.find("port=',5433'") != std::string::npos);
    CHECK(u.redacted == "postgres://app@h1,h2:5433/shop");
    DbUrl both = ParseUrl("postgres://app@h1:6432,h2/shop");
    CHECK(both.port == "6432,");
    DbUrl none = ParseUrl("postgres://app@h1,h2/shop");
    CHECK(none.port.empty());
  }

  TEST_CASE("password in the query string is redacted") {
    DbUrl u = ParseUrl("postgres://h/d?user=bob&password=qu3ry-pw");
    CHECK(u.user == "bob");
    CHECK(u.redacted == "postgres://h/d?user=bob&password=***");
    CHECK(u.conninfo.find("password='qu3ry-pw'") != std::string::npos);
  }

  TEST_CASE("libpq key value conninfo") {
    DbUrl u = ParseUrl("host=10.0.0.5 port=5432 dbname=shop user=app password='p w\\'d'");
    CHECK(u.engine == Engine::kPostgres);
    CHECK(u.host == "10.0.0.5");
    CHECK(u.dbname == "shop");
    CHECK(u.user == "app");
    CHECK(u.has_password);
    CHECK(u.conninfo == "host='10.0.0.5' port='5432' dbname='shop' user='app' password='p w\\'d'");
    CHECK(u.redacted == "host='10.0.0.5' port='5432' dbname='shop' user='app' password=***");
  }

  TEST_CASE("malformed postgres URLs never show the password") {
    auto e = CatchError([] { ParseUrl("postgres://app:Hunter2-secret@db:54x2/shop"); });
    CHECK(e.code() == "invalid_url");
    CHECK(e.message() ==
          "invalid database URL \"postgres://app:***@db:54x2/shop\": port \"54x2\" is not a number between 1 and "
          "65535 (expected postgres://user:password@host:5432/dbname?sslmode=require)");
    CHECK(std::string(e.what()).find("Hunter2") == std::string::npos);

    auto bad_pct = CatchError([] { ParseUrl("postgres://app:pw%zzsecret@db/shop"); });
    CHECK(bad_pct.message() ==
          "invalid database URL \"postgres://***@...\": its user name or password holds characters a URL reserves "
          "(@ : / ? # %) without percent-encoding them; build the URL with db.url{ user = ..., password = ..., host = "
          "..., database = ... } (it encodes them), or percent-encode the password");
    // A password pasted with @ : / % into the URL: nothing of it is quoted
    // (it used to come back as host "ss" and port "w").
    auto pasted = CatchError([] { ParseUrl("postgres://app:p@ss:w/rd%-XYZZY@db.internal/app"); });
    CHECK(pasted.code() == "invalid_url");
    for (const char* piece : {"ss:w", "rd%", "XYZZY", "\"w\"", "p@"}) {
      CAPTURE(piece);
      CHECK(pasted.message().find(piece) == std::string::npos);
    }
    // Built from parts, the same password is one password.
    UrlParts parts;
    parts.user = "app";
    parts.password = "p@ss:w/rd%-XYZZY";
    parts.host = "db.internal";
    parts.database = "app";
    std::string built = BuildPostgresUrl(parts);
    CHECK(built == "postgres://app:p%40ss%3Aw%2Frd%25-XYZZY@db.internal/app");
    DbUrl back = ParseUrl(built);
    CHECK(back.conninfo.find("password='p@ss:w/rd%-XYZZY'") != std::string::npos);
    CHECK(Mask(built).find("XYZZY") == std::string::npos);

    auto query = CatchError([] { ParseUrl("postgres://db/shop?password=Qsecret99&sslmode"); });
    CHECK(query.message() ==
          "invalid database URL \"postgres://db/shop?password=***&sslmode\": query parameter \"sslmode\" must look "
          "like key=value (expected postgres://user:password@host:5432/dbname?sslmode=require)");

    auto kv = CatchError([] { ParseUrl("host=db password='Zsecret77 dbname=x"); });
    CHECK(kv.message() ==
          "invalid database URL \"host=db password=***\": unterminated quoted value for \"password\" (expected "
          "postgres://user:password@host:5432/dbname?sslmode=require)");
    CHECK(std::string(kv.what()).find("Zsecret77") == std::string::npos);
  }

  TEST_CASE("unsupported or empty URLs") {
    CHECK(CatchError([] { ParseUrl("mysql://root:Rpass123@h/db"); }).message() ==
          "invalid database URL \"mysql://root:***@h/db\": unsupported scheme \"mysql\" (expected "
          "sqlite:///abs/path.db, sqlite:relative.db, sqlite::memory:, postgres://user:password@host:5432/dbname "
          "or 'host=... dbname=...')");
    CHECK(CatchError([] { ParseUrl("  "); }).message() ==
          "invalid database URL \"\": the URL is empty (expected sqlite:///abs/path.db, sqlite:relative.db, "
          "sqlite::memory:, postgres://user:password@host:5432/dbname or 'host=... dbname=...')");
    CHECK(CatchError([] { ParseUrl("app.db"); }).message() ==
          "invalid database URL \"app.db\": not a database URL (expected sqlite:///abs/path.db, "
          "sqlite:relative.db, sqlite::memory:, postgres://user:password@host:5432/dbname or "
          "'host=... dbname=...')");
  }

  TEST_CASE("RedactUrl on arbitrary text") {
    CHECK(RedactUrl("postgres://u:pw@h/d") == "postgres://u:***@h/d");
    CHECK(RedactUrl("postgres://u@h/d") == "postgres://u@h/d");
    CHECK(RedactUrl("host=h password=abc dbname=d") == "host=h password=*** dbname=d");
    CHECK(RedactUrl("host=h password = 'a b' dbname=d") == "host=h password = *** dbname=d");
  }
}

}  // namespace
}  // namespace hoist::db
