-- Two colours that drifted apart: blue and green each wrote to their own
-- SQLite file instead of one shared database. `shared` is where they
-- should both point once consolidated (playbooks/consolidate.lua).
return {
  default_env = "shared",
  environments = {
    blue = { database = "sqlite:data/blue.db", backups = { dir = "backups", keep = 5 } },
    green = { database = "sqlite:data/green.db", backups = { dir = "backups", keep = 5 } },
    shared = { database = "sqlite:data/shared.db", backups = { dir = "backups", keep = 5 } },
  },
}
