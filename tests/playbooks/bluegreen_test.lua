-- The blue/green test playbook against the shared cases: all must pass.
local t = require "hoist.testing"
require "bluegreen_cases"(t.path("."), t.path("bluegreen.lua"))
