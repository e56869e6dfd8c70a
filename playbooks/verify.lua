--- verify: are the backups restorable and is the live database sound?
-- For each chosen backup: size and checksum, integrity, and a restore drill
-- into a sandbox. For the live database: its integrity, and its schema
-- fingerprint compared with the expected one. Read-only for the database
-- (drills write only their result into the backup's manifest).
local hoist = require "hoist"
local backup = require "hoist.backup"
local log = require "hoist.log"
local project = require "hoist.project"
local null = require("hoist.db").null

local function short(fp) return fp and fp:sub(1, 16) or "?" end

-- max(version) of hoist_schema_migrations, as the backup manifests record it.
local function migration_version(conn)
  for _, t in ipairs(conn:tables()) do
    if t == "hoist_schema_migrations" then
      local v = conn:scalar("SELECT max(version) FROM hoist_schema_migrations")
      if v == nil or v == null then return nil end
      return tostring(v)
    end
  end
  return nil
end

return hoist.playbook {
  name = "verify",
  version = "1.0.1",
  summary = "Verify backups (checksum, integrity, restore drill) and the live database (integrity, schema fingerprint)",
  lock = false,
  params = {
    backups = { type = "list", default = { "latest" }, help = "backup file names to verify (latest = the newest of this database; all = every one)" },
    drill = { type = "boolean", default = true, help = "also restore each backup into a sandbox and check it there" },
    live = { type = "boolean", default = true, help = "also check the live database's integrity and schema fingerprint" },
    expect_fingerprint = { type = "string", default = "", help = "the live schema's expected fingerprint (default: the one in the newest verified backup at the same migration version)" },
    smoke_sql = { type = "list", help = "drill: statements that must succeed on the restored copy (e.g. SELECT count(*) FROM users)" },
  },
  run = function(run, p)
    local conn <close> = project.database(run)
    local problems = {}
    local function problem(msg)
      problems[#problems + 1] = msg
      log.error(msg)
    end
    -- Each check is a step that fails on a problem (so it shows as failed
    -- and is journaled as such); the next checks still run, and the run
    -- fails at the end listing every problem.
    local function check(name, fn)
      local ok, err = pcall(run.step, run, name, fn)
      if ok then return end
      if type(err) ~= "table" or err.area ~= "verify" then error(err, 0) end
      problems[#problems + 1] = err.message
    end
    local function found(msg) error(hoist.error("verify", "problem", msg)) end
    local chosen = {}
    local wanted = #p.backups > 0 and p.backups or { "latest" }
    if wanted[1] == "all" then
      chosen = project.backups_of(run, conn)
      if #chosen == 0 then problem("no backups of " .. conn:url() .. " in " .. project.backups(run).dir) end
    else
      for _, name in ipairs(wanted) do chosen[#chosen + 1] = project.find_backup(run, conn, name) end
    end
    local pg = conn:kind() == "postgres"
    for _, e in ipairs(chosen) do
      check("verify " .. e.name, function()
        local v = backup.verify(e.path, { deep = not pg })
        if not v.ok then found(v.message) end  -- each problem names the file
        local out = { ok = true, sha256 = v.sha256 }
        if p.drill then
          local d = backup.drill(e.path, { conn = pg and conn or nil, smoke_sql = p.smoke_sql })
          out.drill = d.ok
          if not d.ok then found(e.name .. ": restore drill failed: " .. table.concat(d.problems, "; ")) end
        end
        log.info(("%s: ok (checksum, integrity%s)"):format(e.name, p.drill and ", restore drill" or ""))
        return out
      end)
    end
    if p.live then
      check("live database " .. conn:url(), function()
        local issues = {}
        local integ = conn:integrity({ quick = false })
        if not integ.ok then issues[#issues + 1] = conn:url() .. ": integrity check " .. integ.summary end
        local fp = conn:fingerprint()
        local version = migration_version(conn)
        local expected, from = nil, nil
        if p.expect_fingerprint ~= "" then
          expected, from = p.expect_fingerprint, "the expect_fingerprint param"
        else
          -- The newest verified backup taken at the same migration version
          -- describes the schema that version should have.
          for _, b in ipairs(project.backups_of(run, conn)) do
            local m = b.manifest or {}
            local mv = m.migration_version
            if mv == null then mv = nil end
            -- A backup whose last drill failed describes nothing we trust.
            local drilled_bad = type(m.last_drill) == "table" and m.last_drill.ok == false
            if b.verified and not drilled_bad and type(m.schema_fingerprint) == "string" and tostring(mv) == tostring(version) then
              expected, from = m.schema_fingerprint, "backup " .. b.name
              break
            end
          end
        end
        if expected == nil then
          log.warn(("%s: schema %s at migration version %s; no verified backup at that version to compare it with (pass -e expect_fingerprint=...)")
            :format(conn:url(), short(fp), tostring(version or "none")))
        elseif expected ~= fp then
          issues[#issues + 1] = (("%s: schema fingerprint %s differs from %s recorded in %s (migration version %s): the schema was changed outside the migrations (hoist compare shows how)")
            :format(conn:url(), short(fp), short(expected), from, tostring(version or "none")))
        elseif integ.ok then
          log.info(("%s: %s; schema %s matches %s"):format(conn:url(), integ.summary, short(fp), from))
        end
        if #issues > 0 then found(table.concat(issues, "; ")) end
        return { integrity = integ.ok, fingerprint = fp, expected = expected, migration_version = version }
      end)
    end
    if #problems > 0 then
      error(hoist.error("verify", "verify_failed", ("%d problem(s): %s"):format(#problems, table.concat(problems, "; "))))
    end
  end,
}
