--- seed: sets up the drift this example repairs — blue and green each
-- migrated and wrote notes into their own SQLite file.
local hoist = require "hoist"
local db = require "hoist.db"
local fs = require "hoist.fs"
local migrate = require "hoist.migrate"
local project = require "hoist.project"

return hoist.playbook {
  name = "seed",
  version = "1.0.0",
  summary = "Create data/blue.db and data/green.db, migrated, with a few notes each (demo setup)",
  params = {
    notes = { type = "integer", default = 3, help = "notes each colour writes" },
  },
  run = function(run, p)
    fs.mkdir_p(run.project_root .. "/data", { mode = "0700" })
    for _, colour in ipairs({ "blue", "green" }) do
      run:step("seed " .. colour, function()
        local url = project.database_url(run, run.environments[colour].database)
        local conn <close> = db.open(url, { create = true, journal_mode = "wal" })
        migrate.up(conn, project.migrations(run))
        conn:tx(function()
          for i = 1, p.notes do
            conn:exec("INSERT INTO notes (body, created_at, tag) VALUES (?, ?, ?)",
              ("%s note %d"):format(colour, i), os.date("!%Y-%m-%dT%H:%M:%SZ"), colour)
          end
        end)
        return conn:scalar("SELECT count(*) FROM notes")
      end)
    end
  end,
}
