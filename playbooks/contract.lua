--- contract: contract-phase migrations, once the previous release is gone.
local hoist = require "hoist"
local bluegreen = require "hoist.bluegreen"

return hoist.playbook {
  name = "contract",
  version = "1.1.1",
  summary = "Stop the standby colour (after nginx drained it), then apply contract migrations",
  description = [[
Refused unless the last deploy passed its bake and is still live. Stops the
standby colour once nginx has drained it — from then on `hoist rollback` has
nothing to switch back to — and applies the pending migrations declared
`-- hoist:phase contract` (migrate.up with allow_contract).]],
  run = function(run)
    return bluegreen.contract(run)
  end,
}
