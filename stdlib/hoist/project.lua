--- hoist.project: the environment keys the canned playbooks read, resolved.
-- One place turns `run.env` (the chosen environment of hoist.lua) into
-- absolute paths and open connections, so every canned playbook and every
-- custom one agrees on what `database`, `migrations` and `backups` mean.
-- The keys are documented in docs/config.md.
local db = require "hoist.db"
local hoist = require "hoist"

local M = {}

local function fail(code, msg)
  error(hoist.error("config", code, msg))
end

-- The key of the chosen environment, as hoist.lua spells it.
local function key_path(run, key)
  return ("environments.%s.%s"):format(run.env.name or "?", key)
end

-- A mistake in hoist.lua: named by its key path, without a file:line (the
-- line that read the key, in the stdlib or a playbook, is not at fault).
local function config_fail(run, key, code, msg)
  error(hoist.error("config", code, ("hoist.lua: %s: %s"):format(key_path(run, key), msg), { where = "" }))
end

--- Absolute form of a path from hoist.lua: relative paths are relative to
-- the project root (the directory holding hoist.lua), never to the cwd.
-- @param key string|nil the environment key it came from, for the message
function M.path(run, p, key)
  if p == nil then return nil end
  if type(p) ~= "string" or p == "" then
    if key then config_fail(run, key, "invalid", "must be a path, got " .. (p == "" and "\"\"" or type(p))) end
    fail("invalid", "expected a path, got " .. tostring(p))
  end
  if p:sub(1, 1) == "/" then return p end
  return run.project_root .. "/" .. p
end

--- The database URL with a relative SQLite path made absolute.
-- `sqlite:data/app.db` and `sqlite:///abs/app.db` are both accepted.
function M.database_url(run, url)
  local from_env = url == nil
  url = url or run.env.database
  if url == nil then
    config_fail(run, "database", "missing", ("not set (add database = \"sqlite:data/app.db\" or a postgres:// URL to "
      .. "environment '%s')"):format(run.env.name or "?"))
  end
  if type(url) ~= "string" then
    if from_env then config_fail(run, "database", "invalid", "must be a URL string, got " .. type(url)) end
    fail("invalid", "a database URL must be a string, got " .. type(url))
  end
  local rel = url:match("^sqlite:([^/].*)$")
  if rel and rel ~= ":memory:" then return "sqlite://" .. M.path(run, rel) end
  return url
end

--- Opens the environment's database (close it, or use `<close>`). A failure
-- keeps its area and code and names the hoist.lua key the URL came from.
function M.database(run, opts)
  local from_env = run.env.database ~= nil
  local ok, conn = pcall(db.open, M.database_url(run), opts)
  if ok then return conn end
  if not from_env or type(conn) ~= "table" or conn.area ~= "db" then error(conn, 0) end
  error(hoist.error(conn.area, conn.code, ("hoist.lua: %s: %s"):format(key_path(run, "database"), conn.message)))
end

---------------------------------------------------------------------------
-- The database's identity: a random id hoist keeps in the database itself
-- (table hoist_identity, hidden from schemas and diffs like hoist_locks) and,
-- once a release went live on it, in the state store (fact "database"), so a
-- run whose hoist.lua names another database — a typo'd path, a new empty
-- file — is refused before anything changes.

--- The id hoist keeps in the database, or nil when it has none.
function M.database_id(conn)
  local ok, id = pcall(conn.scalar, conn, "SELECT id FROM hoist_identity ORDER BY created_at LIMIT 1")
  if ok and type(id) == "string" and id ~= "" then return id end
  return nil
end

--- The database's id, created when it has none yet.
function M.ensure_database_id(conn)
  local id = M.database_id(conn)
  if id then return id end
  local random = conn:kind() == "postgres" and "md5(random()::text || clock_timestamp()::text)"
    or "lower(hex(randomblob(16)))"
  conn:exec("CREATE TABLE IF NOT EXISTS hoist_identity (id TEXT NOT NULL, created_at TEXT NOT NULL)")
  conn:exec("INSERT INTO hoist_identity (id, created_at) SELECT " .. random .. ", CURRENT_TIMESTAMP "
    .. "WHERE NOT EXISTS (SELECT 1 FROM hoist_identity)")
  return M.database_id(conn)
end

local function sqlite_file(url)
  return url:match("^sqlite://(/[^?]*)")
end

local function exists(path)
  local fs = require "hoist.fs"
  return fs.exists(path)
end

--- Refuses (code "database_mismatch"), before anything changes, a run whose
-- configured database is not the one the environment's live release runs
-- on, or does not exist although the environment has deployed before.
-- @param opts table: new_database (true: moving to another or a new, empty
--   database is intended), what (the operation, for the message)
-- @return the recorded { id, url } (nil before the first release)
function M.check_database(run, opts)
  opts = opts or {}
  local url = M.database_url(run)
  local rec = run:recall("database")
  local env = run.env.name or "?"
  local fix = "fix 'database' of environment '" .. env .. "' in hoist.lua, or pass -e new_database=true to move "
    .. "the environment to this database on purpose"
  local file = sqlite_file(url)
  if not rec then
    local last = run:recall("last_deploy")
    if last and file and not exists(file) and not opts.new_database then
      fail("database_mismatch", ("%s: the database %s does not exist, but environment '%s' has deployed before "
        .. "(release %s): a typo? Nothing was changed; %s"):format(opts.what or run.playbook, file, env,
        tostring(last.release), fix))
    end
    return nil
  end
  if opts.new_database then return rec end
  if file and not exists(file) then
    fail("database_mismatch", ("%s: the database %s does not exist; the live release runs on %s (database id %s). "
      .. "A typo? Nothing was changed; %s"):format(opts.what or run.playbook, file, tostring(rec.url),
      tostring(rec.id), fix))
  end
  local conn <close> = db.open(url, { readonly = true })
  local id = M.database_id(conn)
  if id ~= rec.id then
    fail("database_mismatch", ("%s: %s is not the database the live release runs on (%s, database id %s; this one "
      .. "has %s). Nothing was changed; %s"):format(opts.what or run.playbook, conn:url(), tostring(rec.url),
      tostring(rec.id), id and ("id " .. id) or "no hoist identity", fix))
  end
  return rec
end

--- Records that the environment's release now runs on conn's database
-- (giving it an id first when it has none).
function M.record_database(run, conn)
  local id = M.ensure_database_id(conn)
  run:remember("database", { id = id, url = conn:url() })
  return id
end

--- The migrations directory (key `migrations`, default "migrations").
function M.migrations(run)
  return M.path(run, run.env.migrations or "migrations", "migrations")
end

--- The fleet deploy's batch and failure rules (key `fleet`): `{ serial,
-- max_fail, on_fail }` checked by hoist.fleet, with its defaults (serial = 1,
-- max_fail = 0, on_fail = "halt"). The arithmetic: docs/fleet.md.
-- @return { serial, max_fail, on_fail }
-- @raise config/invalid naming the key in hoist.lua, with an example
function M.fleet(run)
  local fleet = require "hoist.fleet"
  local ok, rules = pcall(fleet.rules, run.env.fleet, key_path(run, "fleet"))
  if ok then return rules end
  if type(rules) ~= "table" or rules.area ~= "fleet" then error(rules, 0) end
  local msg = tostring(rules.message):gsub("^fleet: ", "")
  error(hoist.error("config", rules.code, "hoist.lua: " .. msg, { where = "" }))
end

--- Backup settings: `backups = "dir"` or `{ dir, keep, keep_safety, compress, format }`.
-- Defaults: dir ".hoist/backups", keep 10, keep_safety 0 (every safety
-- backup is kept), no compression.
function M.backups(run)
  local b = run.env.backups
  if type(b) == "string" then b = { dir = b } end
  b = b or {}
  if type(b) ~= "table" then config_fail(run, "backups", "invalid", "must be a directory or a table, got " .. type(b)) end
  local out = {}
  for k, v in pairs(b) do out[k] = v end
  out.dir = M.path(run, b.dir or ".hoist/backups", "backups.dir")
  if out.keep == nil then out.keep = 10 end
  if out.keep_safety == nil then out.keep_safety = 0 end
  return out
end

--- Totals of a backup.list() (only the paths in `only`, a set, when given):
-- { count, bytes, safety, safety_bytes }. Safety backups are kept until
-- backups.keep_safety says otherwise: status and prune show what they take.
function M.backup_totals(list, only)
  local t = { count = 0, bytes = 0, safety = 0, safety_bytes = 0 }
  for _, e in ipairs(list) do
    if not only or only[e.path] then
      t.count, t.bytes = t.count + 1, t.bytes + e.size
      if e.safety then t.safety, t.safety_bytes = t.safety + 1, t.safety_bytes + e.size end
    end
  end
  return t
end

--- The backups of this environment's database in its backups directory,
-- newest first (`backup.list` entries whose manifest names this source).
-- @param run the run object
-- @param conn an open hoist.db connection (the source to match)
-- @return array of backup.list entries (empty when there are none)
function M.backups_of(run, conn)
  local backup = require "hoist.backup"
  local url = conn:url()
  -- Manifests record a SQLite source as its path, PostgreSQL as the redacted URL.
  local source = url:match("^sqlite://(.*)$") or url
  local out = {}
  for _, e in ipairs(backup.list(M.backups(run).dir)) do
    if e.source == source then out[#out + 1] = e end
  end
  return out
end

--- One backup of this environment's database: by file name (or path) when
-- `name` is given, else the newest one.
-- @param run the run object
-- @param conn an open hoist.db connection (the source to match)
-- @param name string|nil a file name or path; nil, "" or "latest" = the newest
-- @return the backup.list entry
-- @raise config/not_found naming the backups directory and what is there
function M.find_backup(run, conn, name)
  local dir = M.backups(run).dir
  local list = M.backups_of(run, conn)
  if name == nil or name == "" or name == "latest" then
    if #list == 0 then
      fail("not_found", ("no backup of %s in %s (take one with: hoist backup)"):format(conn:url(), dir))
    end
    return list[1]
  end
  local base = name:match("([^/]+)$")
  for _, e in ipairs(list) do
    if e.name == base or e.path == name then return e end
  end
  -- The file is there but not among this database's backups: say why.
  local backup = require "hoist.backup"
  for _, e in ipairs(backup.list(dir)) do
    if e.name == base or e.path == name then
      if not e.has_manifest then
        fail("not_found", ("%s in %s has no manifest (%s.json is missing), so hoist cannot tell which database it is "
          .. "a backup of and will not use it; nothing was changed. Put %s.json back beside it (a copy of the backups "
          .. "directory may have it), or choose another backup"):format(e.name, dir, e.name, e.name))
      end
      fail("not_found", ("%s in %s is a backup of %s, not of %s; nothing was changed"):format(
        e.name, dir, e.source ~= "" and e.source or "an unknown database", conn:url()))
    end
  end
  if exists(dir .. "/" .. base) then
    fail("not_found", ("%s in %s is not a hoist backup (it has neither %s.json nor %s.sha256); nothing was changed")
      :format(base, dir, base, base))
  end
  local names = {}
  for i = 1, math.min(#list, 5) do names[#names + 1] = list[i].name end
  fail("not_found", ("no backup named %s of %s in %s (newest: %s)"):format(
    name, conn:url(), dir, #names > 0 and table.concat(names, ", ") or "none"))
end

--- Applied migrations newer than every file of a status's dir: a newer
-- release's expand migrations (kept by a deploy that failed after them, or
-- left by a rollback) — the release of dir runs on them by design, so they
-- are not a broken history. File names, by version.
function M.migrations_ahead(st)
  local top = -math.huge
  for _, m in ipairs(st.migrations or {}) do
    if m.state ~= "missing" and m.version > top then top = m.version end
  end
  local out = {}
  for _, m in ipairs(st.migrations or {}) do
    if m.state == "missing" and m.version > top then out[#out + 1] = m.file end
  end
  return out
end

return M
