--- hoist: the entry module of playbooks.
-- `require "hoist"` gives hoist.playbook (the description marker),
-- hoist.secret (masked secrets) and hoist.version.
local core = require "hoist.core"

local M = {}

--- The running hoist's version ("0.1.0").
M.version = core.version

--- Declares a playbook. The runtime validates the description (name,
-- semver version, summary, requires, params, lock, run) before anything runs.
-- @param desc table the playbook description
-- @return desc, marked as a playbook
M.playbook = core.playbook

--- Reads secret NAME from the environment variable NAME or the file named by
-- NAME_FILE. The value is masked in every log line, journal entry and error.
-- @param name string
-- @return string the secret
-- @raise secret/not_found when neither is set
M.secret = core.secret

--- Builds a hoist error value (area, code, message; extra fields copied on):
-- `error(hoist.error("deploy", "unhealthy", "green never answered"))` reaches
-- the user as `playbooks/x.lua:LINE: deploy: green never answered`.
M.error = core.error

--- Raises `area: unknown option 'x' for WHERE (expected one of: ...)` when
-- table t has a key not in allowed; nil passes (no options given).
function M.check_options(area, t, where, allowed)
  if t == nil then return end
  if type(t) ~= "table" then error(M.error(area, "invalid", where .. ": options must be a table")) end
  local ok = {}
  for _, k in ipairs(allowed) do ok[k] = true end
  for k in pairs(t) do
    if not ok[k] then
      error(M.error(area, "invalid", string.format("unknown option '%s' for %s (expected one of: %s)", tostring(k),
        where, table.concat(allowed, ", "))))
    end
  end
end

--- A byte count for people: "512 B", "3.4 KiB", "1.2 MiB", "2.0 GiB".
function M.bytes(n)
  if n >= 1073741824 then return string.format("%.1f GiB", n / 1073741824) end
  if n >= 1048576 then return string.format("%.1f MiB", n / 1048576) end
  if n >= 1024 then return string.format("%.1f KiB", n / 1024) end
  return string.format("%d B", n)
end

--- Replaces every registered secret in text with "***".
M.mask = core.mask

return M
