// The environment's hosts for playbooks (hoist.hosts, and the run object's
// run:hosts / run:host / run:on / run:each, which call these with the run
// as their first argument).
#pragma once

#include <lua.hpp>

#include <string>

#include "engine/world.h"

namespace hoist::bind {

/// Each reads its arguments from stack index `first` on.
/// (role?) -> the hosts (with that role), in name order.
int HostsList(lua_State* L, int first);
/// (name) -> the host table; hosts/unknown naming the known hosts.
int HostsGet(lua_State* L, int first);
/// (host, fn, ...) -> fn(...)'s results, its world calls acting on host.
int HostsOn(lua_State* L, int first);
/// (hosts, fn) -> { {host, ok, value | error}, ... }: fn(host) for every
/// host at once, one thread each, taking turns at the VM (core/turn.h).
int HostsEach(lua_State* L, int first);

/// A host argument at idx: its name, or a host table (run:hosts' entries).
/// Returns the name; hosts/unknown naming the known hosts, hosts/invalid.
std::string HostArg(lua_State* L, int idx);
/// The world acting on host `name` during a run (Context::host_world),
/// giving run:each's turn up while it is reached. hosts/invalid outside a run.
engine::World& HostWorld(lua_State* L, const std::string& name);

}  // namespace hoist::bind
