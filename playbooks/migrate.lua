--- migrate: the environment's schema migrations, for humans.
-- A thin layer over hoist.migrate (docs/migrations.md): status, plan (what
-- `up` would run), lint (rehearsal on a copy), up (expand policy by
-- default, after a protected backup) and down (stored down sections).
local hoist = require "hoist"
local backup = require "hoist.backup"
local log = require "hoist.log"
local migrate = require "hoist.migrate"
local project = require "hoist.project"

local function plan_text(plan)
  if #plan == 0 then return "nothing to do" end
  local out = {}
  for _, step in ipairs(plan) do
    out[#out + 1] = ("%s %s%s"):format(step.version, step.file, step.transaction == false and " (no transaction)" or "")
  end
  return table.concat(out, "\n")
end

local function list_files(items)
  local out = {}
  for _, a in ipairs(items) do out[#out + 1] = a.file .. (a.class and (" [" .. a.class .. "]") or "") end
  return table.concat(out, ", ")
end

-- A safety backup before anything changes the schema: the way back if a
-- migration does what its down section cannot undo.
local function safety_backup(run, conn, label)
  local settings = project.backups(run)
  return run:step("backup before migrating", function()
    local b = backup.create(conn, { dir = settings.dir, label = label, safety = true, keep_safety = settings.keep_safety,
      reason = "before hoist migrate (run " .. run.id .. ")", compress = settings.compress, format = settings.format })
    log.info("safety backup: " .. b.path)
    return { path = b.path, sha256 = b.sha256 }
  end)
end

return hoist.playbook {
  name = "migrate",
  version = "1.3.1",
  summary = "Schema migrations: status, plan, lint, up (expand policy, after a backup), down, repair",
  params = {
    action = { type = "enum", values = { "status", "plan", "lint", "up", "down", "repair" }, default = "status",
               help = "status: what is applied; plan: what up would run; lint: rehearse pending migrations on a copy; up: apply; down: roll back; repair: accept changed files and drop failed records (needs -e reason=...)" },
    to = { type = "integer", help = "up: apply up to this version (default: all pending); down: roll back every version above it (-e to=0: every migration; default: use steps)" },
    reason = { type = "string", help = "repair: why the history is accepted as it is (kept in the journal)" },
    steps = { type = "integer", default = 1, help = "down: how many migrations to roll back (newest first)" },
    policy = { type = "enum", values = { "expand", "any" }, default = "expand",
               help = "up: expand refuses destructive/incompatible migrations unless declared contract and allowed; any checks nothing" },
    allow_contract = { type = "boolean", default = false, help = "up: also apply migrations declared '-- hoist:phase contract' (once the previous version is retired)" },
    dry_run = { type = "boolean", default = false, help = "up/down: show the SQL that would run, change nothing" },
    backup = { type = "boolean", default = true, help = "up/down: take a verified safety backup first (skipped when there is nothing to do); false also lets a down or a destructive migration go without the one hoist takes itself" },
    create = { type = "boolean", default = false, help = "up: create the SQLite database file when it does not exist yet (a new project); off so a mistyped path is an error" },
    version = { type = "string", help = "when `migrations` holds {version} (each release ships its own): the release whose migrations to use (default: the one deployed last, as hoist deploy remembers it)" },
  },
  run = function(run, p)
    local a = p.action
    if (a == "up" or a == "down") and not p.dry_run then
      project.check_database(run, { what = "migrate " .. a, new_database = p.create })
    end
    local conn <close> = project.database(run, (p.create and a == "up") and { create = true } or nil)
    local dir = project.migrations(run)
    if dir:find("{version}", 1, true) then
      -- Releases ship their migrations (examples/sqlite-bluegreen): without
      -- a release the path names no directory at all.
      local release = p.version
      if not release then
        local last = run:recall("last_deploy")
        release = last and last.release
      end
      if not release then
        error(hoist.error("migrate", "invalid", ("migrations = %q names a directory per release: say which with "
          .. "-e version=RELEASE (no deploy is remembered to default to)"):format(run.env.migrations)))
      end
      dir = dir:gsub("{version}", (tostring(release):gsub("%%", "%%%%")))
    end
    if a == "status" then
      local st = run:step("status", function() return migrate.status(conn, dir) end)
      log.info(conn:url() .. ": migrations in " .. dir .. "\n" .. (st.text:gsub("\n$", "")))
      -- Missing files newer than every file here are a newer release's
      -- expand migrations (what hoist status says too), not a broken history.
      local ahead = project.migrations_ahead(st)
      local c = st.counts
      if #ahead > 0 and #ahead == (c.missing or 0) and (c.changed or 0) + (c.failed or 0) + (c.out_of_order or 0) == 0 then
        log.info(("%d migration(s) applied beyond the files in %s (%s): a newer release's expand migrations, kept; "
          .. "this release runs on them by design. To remove them: hoist migrate -e action=down -e steps=%d")
          :format(#ahead, dir, table.concat(ahead, ", "), #ahead))
        return
      end
      if not st.ok then
        error(hoist.error("migrate", "history", "the migration history has problems (changed, missing, failed or out-of-order files, listed above): see docs/migrations.md, 'Recovering from a failed migration'"))
      end
      return
    end
    if a == "lint" then
      local r = run:step("lint " .. dir, function() return migrate.lint(conn, dir) end)
      log.info(r.text ~= "" and r.text or "no pending migrations to rehearse")
      if not r.ok then
        error(hoist.error("migrate", "lint_failed", ("lint found %d problem(s) in the pending migrations (listed above); nothing was applied"):format(#r.problems)))
      end
      return
    end
    if a == "repair" then
      if not p.reason or p.reason == "" then
        error(hoist.error("migrate", "invalid", "repair needs -e reason=\"...\": it accepts changed files and drops "
          .. "failed records, and the journal keeps why"))
      end
      local r = run:step("repair", function() return migrate.repair(conn, dir, { reason = p.reason }) end)
      log.info(("repaired the history of %s: %d checksum(s) accepted, %d failed record(s) dropped"):format(conn:url(),
        #(r.accepted or {}), #(r.dropped or {})))
      return r
    end
    -- nil: every pending one (up) / steps (down); 0 is a real version for down: everything.
    local to = p.to
    if a == "plan" or ((a == "up") and p.dry_run) then
      local r = run:step("plan", function()
        return migrate.up(conn, dir, { to = to, policy = p.policy, allow_contract = p.allow_contract, dry_run = true })
      end)
      log.info(("plan for %s (at version %s):\n%s"):format(conn:url(), tostring(r.from or "none"), plan_text(r.plan)))
      return
    end
    if a == "up" then
      local st = migrate.status(conn, dir)
      -- Failed, changed, missing or out-of-order files are up's business
      -- (it retries or refuses them with the reason), not "up to date".
      if st.ok and #st.pending == 0 then
        log.info(conn:url() .. " is up to date (version " .. tostring(st.current or "none") .. ")")
        return
      end
      -- An empty database has nothing to lose (and a new SQLite file is 0 bytes).
      if p.backup and #conn:tables() > 0 then safety_backup(run, conn, "pre-migrate") end
      local r = run:step("migrate up (policy " .. p.policy .. ")", function()
        return migrate.up(conn, dir, { to = to, policy = p.policy, allow_contract = p.allow_contract,
          safety_backup = p.backup })
      end)
      log.info(("migrated %s from version %s to %s: %s"):format(conn:url(), tostring(r.from or "none"),
        tostring(r.to or "none"), #r.applied > 0 and list_files(r.applied) or "nothing applied"))
      return { from = r.from, to = r.to, applied = #r.applied }
    end
    -- down
    local opts = to and { to = to } or { steps = p.steps }
    opts.safety_backup = p.backup
    if p.dry_run then
      opts.dry_run = true
      local r = run:step("plan down", function() return migrate.down(conn, opts) end)
      log.info(("down plan for %s (at version %s):\n%s"):format(conn:url(), tostring(r.from or "none"), plan_text(r.plan)))
      return
    end
    if p.backup then safety_backup(run, conn, "pre-migrate-down") end
    local r = run:step("migrate down", function() return migrate.down(conn, opts) end)
    log.info(("rolled back %s from version %s to %s: %s"):format(conn:url(), tostring(r.from or "none"),
      tostring(r.to or "none"), list_files(r.rolled_back)))
    return { from = r.from, to = r.to, rolled_back = #r.rolled_back }
  end,
}
