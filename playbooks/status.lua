--- status: what runs where, read-only.
local hoist = require "hoist"
local bluegreen = require "hoist.bluegreen"

local fmt, concat = string.format, table.concat

return hoist.playbook {
  name = "status",
  version = "1.3.0",
  summary = "Active colour, release per colour, schema version, last backup, lease, last runs (read-only)",
  lock = false,
  run = function(run)
    local s = bluegreen.status(run)
    local lines = {}
    local function say(...) lines[#lines + 1] = fmt(...) end
    say("environment %s", tostring(run.env.name))
    say("active colour: %s", s.active or ("unknown: " .. tostring(s.active_error)))
    for _, c in ipairs(bluegreen.config(run).colours) do
      local e = s.colours[c]
      say("  %-6s %-5s release %-8s %s%s", c, e.live and "LIVE" or "", tostring(e.release or "-"), e.state,
        e.pid and fmt(" (pid %d, %s)", e.pid, e.address) or fmt(" (%s)", e.address))
    end
    if s.hosts then
      say("hosts:")
      for _, h in ipairs(s.hosts) do
        if h.error then
          say("  %-10s UNREACHABLE: %s", h.name, h.error)
        else
          local parts = {}
          for _, c in ipairs(bluegreen.config(run).colours) do
            local e = h.colours[c]
            parts[#parts + 1] = fmt("%s%s release %s %s%s", c, e.live and " (LIVE)" or "", tostring(e.release or "-"),
              e.state, e.pid and fmt(" (pid %d)", e.pid) or "")
          end
          say("  %-10s %s", h.name, concat(parts, "; "))
        end
      end
    end
    if s.schema.error then
      say("schema: %s", s.schema.error)
    else
      local ahead = s.schema.ahead or {}
      say("schema version: %s, %d pending%s%s", tostring(s.schema.version), #s.schema.pending,
        #s.schema.pending > 0 and (": " .. concat(s.schema.pending, ", ")) or "",
        #ahead > 0 and fmt("; %d applied beyond the live release's files (%s: a newer release's expand "
          .. "migrations, kept)", #ahead, concat(ahead, ", ")) or "")
    end
    if s.last_backup then
      say("last backup: %s (%s, %s)", s.last_backup.path, tostring(s.last_backup.created_at),
        s.last_backup.verified and "verified" or "NOT verified")
    else
      say("last backup: none")
    end
    local b = s.backups
    if b.count > 0 then
      say("backups: %d (%s) in %s; %d safety backup(s) (%s), %s", b.count, hoist.bytes(b.bytes), b.dir, b.safety,
        hoist.bytes(b.safety_bytes), b.keep_safety > 0 and fmt("the newest %d per database kept", b.keep_safety)
          or "all kept (set backups.keep_safety to prune them)")
    end
    if s.last_deploy then
      say("last deploy: release %s to %s (run %s, %s)", tostring(s.last_deploy.release), tostring(s.last_deploy.colour),
        tostring(s.last_deploy.run_id), s.last_deploy.baked and "baked" or "rolled back")
    end
    local l = s.lease
    if l and not l.ours and l.expired then
      say("lease: EXPIRED at %s (was %s@%s, run %s, %s): the next run takes it over", l.expires_at, l.owner, l.host,
        tostring(l.run_id), l.reason)
    elseif l and not l.ours then
      say("lease: held by %s@%s (run %s, %s) until %s%s", l.owner, l.host, tostring(l.run_id), l.reason, l.expires_at,
        l.holder_gone and fmt("; its pid %s is gone on this host", tostring(l.pid)) or "")
    else
      say("lease: free")
    end
    say("last runs:")
    for _, r in ipairs(s.runs) do
      if r.id ~= run.id then
        say("  %5d  %s  %-10s %-8s %s", r.id, r.started_at, r.playbook, r.version, r.status)
      end
    end
    run:print(concat(lines, "\n"))
    return s
  end,
}
