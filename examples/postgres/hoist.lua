-- A PostgreSQL-backed app. The URL comes from the environment so the
-- password never sits in this file: DATABASE_URL=postgres://app:PASSWORD@db1:5432/app
-- (the password is masked in every log line, journal entry and error).
return {
  environments = {
    prod = {
      database = os.getenv("DATABASE_URL") or "postgres://app@127.0.0.1:5432/app",
      migrations = "migrations",
      backups = { dir = "backups", keep = 5 },   -- pg_dump custom format
    },
  },
}
