-- The shared blue/green cases against the broken playbook: expected to FAIL
-- (run by tests/unit/cli/sandbox_cli_test.cpp by path; the name keeps it out
-- of `hoist test` discovery, which only picks *_test.lua).
local t = require "hoist.testing"
require "bluegreen_cases"(t.path("../playbooks"), t.path("bluegreen_broken.lua"))
