-- examples/sqlite-bluegreen: an API whose blue and green instances share
-- one SQLite file in WAL mode behind nginx. `./dev demo` (from the repo
-- root) sets up a private nginx under .hoist/nginx and runs the story; the
-- EXAMPLE_* variables let tests run it on free ports.
local getenv = os.getenv
local nginx_dir = ".hoist/nginx"
local nginx_port = getenv("EXAMPLE_NGINX_PORT") or "18080"
-- With EXAMPLE_IMAGE (a FROM-scratch image holding the static app as /app,
-- see README.md) the colours are containers on EXAMPLE_DOCKER_SOCKET.
local image = getenv("EXAMPLE_IMAGE")
-- With EXAMPLE_DATABASE_URL (postgres://...) the notes live in PostgreSQL
-- instead of data/app.db (the PostgreSQL blue/green tests).
local database_url = getenv("EXAMPLE_DATABASE_URL")

return {
  default_env = "demo",
  lease = { ttl = 60 },
  environments = {
    demo = {
      database   = database_url or "sqlite:data/app.db",
      migrations = "releases/{version}/migrations",   -- each release ships its migrations
      backups    = { dir = ".hoist/backups", keep = 5 },
      app = {
        -- The same binary is release 1, 2 or 3 (--release); a real project
        -- would point at releases/{version}/bin/api instead.
        kind = image and "docker" or "process",
        argv = { image and "/app" or getenv("EXAMPLE_APP") or "hoist_example_app",
                 "--port", "{port}", "--colour", "{colour}", "--release", "{version}" },
        -- The app's --db by environment: a PostgreSQL URL holds a password,
        -- which any user on the host could read in an argv.
        env = { APP_DB = database_url or "{database_path}" },
        image = image,
        socket = getenv("EXAMPLE_DOCKER_SOCKET"),
        binds = { "{project_root}/data:{project_root}/data" },   -- the shared SQLite file, same path inside
        colours = {
          blue  = { port = tonumber(getenv("EXAMPLE_BLUE_PORT") or "5001") },
          green = { port = tonumber(getenv("EXAMPLE_GREEN_PORT") or "5002") },
        },
        run_dir = ".hoist/run",
        start_timeout = 15,
        stop_grace = 10,
      },
      nginx = {
        conf      = nginx_dir .. "/upstream.conf",
        upstream  = "api",
        main_conf = nginx_dir .. "/nginx.conf",
        prefix    = nginx_dir,
        pid_file  = nginx_dir .. "/nginx.pid",
        error_log = nginx_dir .. "/logs/error.log",
        verify    = { url = "http://127.0.0.1:" .. nginx_port .. "/api/health", expect_header = "X-Colour", timeout = 5 },
      },
      health = {
        path = "/api/health",
        json = { status = "ok" },
        sql  = "SELECT count(*) FROM notes",
        timeout = tonumber(getenv("EXAMPLE_HEALTH_TIMEOUT") or "15"),
      },
      bake = {
        seconds = tonumber(getenv("EXAMPLE_BAKE_SECONDS") or "3"),
        url = "http://127.0.0.1:" .. nginx_port .. "/api/health",
        interval = 0.2,
      },
    },
  },
}
