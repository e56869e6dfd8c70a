--- deploy: the canned blue/green deploy (the procedure is hoist.bluegreen's).
local hoist = require "hoist"
local bluegreen = require "hoist.bluegreen"

return hoist.playbook {
  name = "deploy",
  version = "1.4.0",
  summary = "Blue/green deploy: verified backup, expand migrations, start idle colour, health gate, switch, bake",
  description = [[
Takes the environment's lease, then:
  1. backup       a safety backup of the database, verified (hoist.backup)
  2. migrations   pending expand migrations, rehearsed on a copy first (lint),
                  then applied with policy expand; contract ones wait for
                  `hoist contract`
  3. start        the new release on the idle colour (a standby still running
                  there is stopped first, once nginx has drained it)
  4. health gate  HTTP (+ SQL) checks on the idle colour's own port
  5. switch       nginx to the idle colour: nginx -t, reload, verified by traffic
  6. bake         probes through nginx for bake.seconds; a failure switches back
The old colour keeps running as the standby: `hoist rollback` switches back
in about a second. Any failure undoes the steps before it: traffic stays on
the old colour; applied expand migrations stay (the old colour runs on
them) unless you confirm their removal (--yes or the prompt): their stored
down sections run, or, when one has none, the pre-deploy backup is restored
(after a second confirmation and a safety backup).
Config keys: docs/config.md ("Blue/green keys"). Runbook: docs/runbook.md.]],
  params = {
    version = { type = "string", help = "the release to deploy (fills {version} in app.argv, migrations); required unless image is given" },
    image = { type = "string", help = "Docker colours: the image to run (overrides app.image; its tag is the release unless version is given)" },
    migrate = { type = "boolean", default = true, help = "apply pending expand migrations" },
    bake = { type = "number", help = "seconds to bake (default: the environment's bake.seconds, else 10)" },
    new_database = { type = "boolean", default = false,
      help = "the environment moves to the database hoist.lua names now, although the live release runs on another one (or it does not exist yet)" },
  },
  run = function(run, p)
    return bluegreen.deploy(run, { version = p.version, image = p.image, migrate = p.migrate, bake = p.bake,
      new_database = p.new_database })
  end,
}
