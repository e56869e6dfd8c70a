// Migration files: sections, annotations, names, checksums.
#include "db/migration_files.h"

#include "support/support.h"

namespace hoist::db {
namespace {

using test::CatchError;

TEST_SUITE("migrate/files") {

TEST_CASE("sections and annotations are parsed") {
  auto m = ParseSqlMigration("/x/0003_add_email.sql",
                             "-- Adds the email column.\n-- hoist:phase expand\n-- hoist:no-transaction\n"
                             "-- hoist:up\nALTER TABLE users ADD COLUMN email TEXT;\n"
                             "-- hoist:down\nALTER TABLE users DROP COLUMN email;\n");
  CHECK(m.version == 3);
  CHECK(m.name == "add_email");
  CHECK(m.file == "0003_add_email.sql");
  CHECK(m.phase == "expand");
  CHECK(m.no_transaction);
  CHECK(m.up == "ALTER TABLE users ADD COLUMN email TEXT;\n");
  CHECK(m.up_line == 5);
  CHECK(m.has_down);
  CHECK(m.down == "ALTER TABLE users DROP COLUMN email;\n");
}

TEST_CASE("a file without sections is all up") {
  auto m = ParseSqlMigration("/x/12_init.sql", "CREATE TABLE t(x);\n");
  CHECK(m.version == 12);
  CHECK(m.up == "CREATE TABLE t(x);\n");
  CHECK_FALSE(m.has_down);
  CHECK(m.phase.empty());
}

TEST_CASE("misplaced and unknown annotations are errors with file and line") {
  CHECK(CatchError([] { ParseSqlMigration("/x/1_a.sql", "-- hoist:up\nSELECT 1;\n-- hoist:phase contract\n"); })
            .message() == "1_a.sql:3: '-- hoist:phase' belongs in the header, before '-- hoist:up'");
  CHECK(CatchError([] { ParseSqlMigration("/x/1_a.sql", "-- hoist:phase later\n-- hoist:up\n"); }).message() ==
        "1_a.sql:1: unknown phase 'later' (expected expand or contract)");
  CHECK(CatchError([] { ParseSqlMigration("/x/1_a.sql", "-- hoist:upp\n"); }).message() ==
        "1_a.sql:1: unknown annotation '-- hoist:upp' (expected up, down, phase, no-transaction)");
  CHECK(CatchError([] { ParseSqlMigration("/x/1_a.sql", "-- hoist:down\nSELECT 1;\n"); }).message() ==
        "1_a.sql:1: '-- hoist:down' before any '-- hoist:up' section");
  CHECK(CatchError([] { ParseSqlMigration("/x/1_a.sql", "CREATE TABLE t(x);\n-- hoist:up\nSELECT 1;\n"); }).message() ==
        "1_a.sql: SQL before '-- hoist:up' would never run: move it into the up section");
  CHECK(CatchError([] { ParseSqlMigration("/x/add.sql", "SELECT 1;"); }).message() ==
        "add.sql: a migration is named NNNN_name.sql (digits, '_', then letters, digits, '_' or '-')");
}

TEST_CASE("sections keep their lines as written, blanks at the end included") {
  // Annotations are read with their blanks trimmed; the SQL is not touched.
  auto m = ParseSqlMigration("/x/0001_notes.sql",
                             "-- hoist:up  \nINSERT INTO notes VALUES ('a  \n\tb\t');\n"
                             "-- hoist:down\t\nDELETE FROM notes;   \n");
  CHECK(m.up == "INSERT INTO notes VALUES ('a  \n\tb\t');\n");
  CHECK(m.has_down);
  CHECK(m.down == "DELETE FROM notes;   \n");
  // A CRLF file's literal keeps its CR, as diesel hands the file over.
  auto crlf = ParseSqlMigration("/x/0002_crlf.sql", "-- hoist:up\r\nINSERT INTO notes VALUES ('a\r\nb');\r\n"
                                                    "-- hoist:down\r\nDELETE FROM notes;\r\n");
  CHECK(crlf.up == "INSERT INTO notes VALUES ('a\r\nb');\r\n");
  CHECK(crlf.down == "DELETE FROM notes;\r\n");
}

TEST_CASE("checksums ignore line endings and trailing whitespace only") {
  std::string a = NormalizedChecksum("-- hoist:up\nSELECT 1;\n");
  CHECK(NormalizedChecksum("-- hoist:up\r\nSELECT 1;   \r\n\r\n") == a);
  CHECK(NormalizedChecksum("-- hoist:up\nSELECT 1;") == a);
  CHECK(NormalizedChecksum("-- hoist:up\nSELECT  1;\n") != a);
  CHECK(NormalizedChecksum("-- hoist:up\nselect 1;\n") != a);
}

TEST_CASE("a directory is ordered by number and rejects duplicates") {
  test::TempDir dir;
  test::WriteFile(dir / "10_c.sql", "SELECT 10;");
  test::WriteFile(dir / "2_b.sql", "SELECT 2;");
  test::WriteFile(dir / "0001_a.sql", "SELECT 1;");
  test::WriteFile(dir / "0005_data.lua", "return { up = function(db) end }");
  test::WriteFile(dir / "README.md", "notes");
  auto all = LoadMigrationDir(dir.path);
  REQUIRE(all.size() == 4);
  CHECK(all[0].version == 1);
  CHECK(all[1].version == 2);
  CHECK(all[2].version == 5);
  CHECK(all[2].kind == "lua");
  CHECK(all[3].version == 10);
  test::WriteFile(dir / "002_dup.sql", "SELECT 2;");
  CHECK(CatchError([&] { LoadMigrationDir(dir.path); }).message() ==
        "002_dup.sql and 2_b.sql have the same version 2: renumber one of them");
  CHECK(CatchError([&] { LoadMigrationDir(dir / "missing"); }).code() == "not_found");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::db
