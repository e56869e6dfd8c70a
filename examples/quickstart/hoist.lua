-- The quickstart project: one environment whose releases live under ./releases
-- and whose active release is named by ./current.
return {
  environments = {
    ["local"] = {
      releases_dir = "releases",
      current_file = "current",
    },
  },
}
