--- seed: a few customers and orders, so backups and drills have data.
local hoist = require "hoist"
local project = require "hoist.project"

return hoist.playbook {
  name = "seed",
  version = "1.0.0",
  summary = "Insert demo customers and orders (after migrate up to 3)",
  params = {
    customers = { type = "integer", default = 3, help = "customers to add, each with two orders" },
  },
  run = function(run, p)
    local conn <close> = project.database(run)
    run:step("seed", function()
      conn:tx(function()
        for i = 1, p.customers do
          local id = conn:scalar("INSERT INTO customers (name, full_name) VALUES ($1, $1) RETURNING id", "customer " .. i)
          conn:exec("INSERT INTO orders (customer_id, total) VALUES ($1, $2), ($1, $3)", id, 10 * i, 2.5 * i)
        end
      end)
      return conn:scalar("SELECT count(*) FROM orders")
    end)
  end,
}
